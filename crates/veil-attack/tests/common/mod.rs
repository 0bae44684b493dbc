//! The small synthetic setting the attack's integration tests share: a LeNet-5 trained for
//! one epoch on synthetic MNIST-like images (a bright square on a noisy background).

use veil_model::{Model, TrainConfig};

/// Synthetic data with `samples` training images (and `veil_data::synthetic`'s test part)
/// drawn with `data_seed`, and a LeNet-5 initialised with `init_seed`, trained one epoch on the training part.
pub fn trained_lenet(samples: usize, data_seed: u64, init_seed: u64) -> (Model, veil_data::Split) {
    let split = veil_data::synthetic::mnist_like(samples, data_seed);
    let model = Model::init(veil_spec::zoo::lenet5(), init_seed).expect("init");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 32,
        ..TrainConfig::default()
    };
    let (model, _) =
        veil_model::train(model, &split.train, None, &cfg, &mut |_| {}).expect("train");
    (model, split)
}
