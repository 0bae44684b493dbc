//! ReLU over the worker pool: burn-flex runs element-wise operations on one thread, which left
//! a core idle during every activation of a training step (12% of a gtsrb_cnn step on two
//! cores).
//!
//! Contract: `max(x, 0)` element-wise with NaN kept (PyTorch's and burn-flex's rule); the
//! gradient passes where the output is positive or NaN and is zero elsewhere (burn-flex's
//! `relu_backward`). Both passes work in place when their buffer is not shared; otherwise the
//! forward pass maps into a new buffer and the backward pass copies the gradient first, so no
//! other tensor ever changes.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// ReLU split over the worker pool, as a burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait ParallelRelu: Backend {
    /// `max(x, 0)` element-wise, NaN kept.
    fn relu_parallel(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The backward pass the autodiff implementation of [`ParallelRelu`] needs from the backend.
pub trait ParallelReluKernels: Backend {
    /// The input gradient: `grad` where `output` is positive or NaN, zero elsewhere (`output`
    /// and `grad` have one shape).
    fn relu_parallel_backward(
        output: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// ReLU: veil's parallel kernel on a flex device, burn's `relu` elsewhere. Same values and
/// gradients either way.
pub fn relu_parallel<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if super::on_flex(&x) && x.dtype() == DType::F32 {
        Tensor::from_dispatch(Dispatch::relu_parallel(x.into_dispatch()))
    } else {
        burn::tensor::activation::relu(x)
    }
}

/// Elements per task: large enough that scheduling costs nothing, small enough that both
/// workers get a share of a LeNet-5 activation.
const CHUNK: usize = 1 << 14;

/// Whether ReLU passes `v` (and its gradient) through: positive or NaN.
fn passes(v: f32) -> bool {
    v.is_nan() || v > 0.0
}

impl ParallelRelu for Flex {
    fn relu_parallel(x: FlexTensor) -> FlexTensor {
        let mut x = contiguous(x);
        if !x.is_unique() {
            // Shared (an autodiff graph may hold it): map into a new buffer, no copy first.
            let relu = |&v: &f32| if passes(v) { v } else { 0.0 };
            let values: &[f32] = x.storage();
            let out: Vec<f32> = match values.len() <= CHUNK {
                true => values.iter().map(relu).collect(),
                false => values.par_iter().with_min_len(CHUNK).map(relu).collect(),
            };
            return FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()));
        }
        // An unconditional store of a select: vectorised, no branch on the sign.
        let relu_in_place = |chunk: &mut [f32]| {
            for v in chunk {
                *v = if passes(*v) { *v } else { 0.0 };
            }
        };
        let values: &mut [f32] = x.storage_mut();
        match values.len() <= CHUNK {
            // One task: no hand-off to the pool (a wake-up costs more than the work).
            true => relu_in_place(values),
            false => values.par_chunks_mut(CHUNK).for_each(relu_in_place),
        }
        x
    }
}

/// `x` contiguous at offset 0, without keeping a second handle on its buffer (a tensor
/// that was unique stays unique, so it can be written in place).
fn contiguous(x: FlexTensor) -> FlexTensor {
    let c = x.to_contiguous();
    drop(x);
    c
}

impl ParallelReluKernels for Flex {
    fn relu_parallel_backward(output: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let output = output.to_contiguous();
        let mut grad = contiguous(grad);
        let out: &[f32] = output.storage();
        // Copy-on-write: a shared gradient is copied once, then masked in place.
        let g: &mut [f32] = grad.storage_mut();
        assert_eq!(
            out.len(),
            g.len(),
            "relu backward: output and gradient differ in size"
        );
        let mask = |(g, out): (&mut [f32], &[f32])| {
            for (g, &o) in g.iter_mut().zip(out) {
                *g = if passes(o) { *g } else { 0.0 };
            }
        };
        match g.len() <= CHUNK {
            true => mask((g, out)),
            false => g
                .par_chunks_mut(CHUNK)
                .zip(out.par_chunks(CHUNK))
                .for_each(mask),
        }
        grad
    }
}

/// The backward step of [`ParallelRelu`] in burn's autodiff graph.
#[derive(Debug)]
struct ParallelReluBackward;

impl<B: ParallelReluKernels> Backward<B, 1> for ParallelReluBackward {
    /// The forward output (it decides where the gradient passes).
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::relu_parallel_backward(ops.state, grad));
        }
    }
}

impl<B: ParallelRelu + ParallelReluKernels, C: CheckpointStrategy> ParallelRelu for Autodiff<B, C> {
    fn relu_parallel(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = ParallelReluBackward.prepare::<C>([x.node()]);
        let x = <Self as AutodiffBackend>::inner(x);
        match prep.compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = B::relu_parallel(x);
                prep.finish(out.clone(), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu_parallel(x)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values and input gradient (under an upstream gradient cycled from `up`) of ReLU, ours
    /// or burn's, over `[n, 3]` data.
    fn run(ours: bool, data: &[f32], up: &[f32]) -> [Vec<f32>; 2] {
        let device = crate::device().autodiff();
        let n = data.len() / 3;
        let x = Tensor::<2>::from_data(TensorData::new(data[..n * 3].to_vec(), [n, 3]), &device)
            .require_grad();
        let y = match ours {
            true => relu_parallel(x.clone()),
            false => burn::tensor::activation::relu(x.clone()),
        };
        let upstream: Vec<f32> = (0..n * 3).map(|i| up[i % up.len()]).collect();
        let upstream = Tensor::<2>::from_data(TensorData::new(upstream, [n, 3]), &device);
        let grads = (y.clone() * upstream).sum().backward();
        let values = |d: TensorData| d.try_to_vec::<f32>().expect("f32");
        [
            values(y.into_data()),
            values(x.grad(&grads).expect("x is used").into_data()),
        ]
    }

    /// Bit patterns, so that NaN compares equal to NaN.
    fn bits(v: &[Vec<f32>; 2]) -> Vec<Vec<u32>> {
        v.iter()
            .map(|v| v.iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Values and gradients equal burn's ReLU bit for bit, over signs, zeros, NaN and sizes
        /// on both sides of the task size.
        #[test]
        fn matches_burn_relu(
            data in proptest::collection::vec(
                prop_oneof![Just(0.0f32), Just(-0.0f32), Just(f32::NAN), -5.0f32..5.0], 3..120),
            up in proptest::collection::vec(-3.0f32..3.0, 1..8),
            big: bool,
        ) {
            // `big` repeats the data past one task (CHUNK elements).
            let data: Vec<f32> = match big {
                true => data.iter().cycle().take(3 * (CHUNK / 3 + 41)).copied().collect(),
                false => data,
            };
            prop_assert_eq!(bits(&run(true, &data, &up)), bits(&run(false, &data, &up)));
        }
    }

    #[test]
    fn a_shared_input_is_not_changed() {
        let device = crate::device();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![-1.0f32, 2.0, -3.0, 4.0], [1, 1, 2, 2]),
            &device,
        );
        let y = relu_parallel(x.clone());
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(values(y), vec![0.0, 2.0, 0.0, 4.0]);
        assert_eq!(values(x), vec![-1.0, 2.0, -3.0, 4.0]);
    }
}
