//! Parsers on the real datasets in `$VEIL_DATA` (the repository's CI points it at
//! `../shared/data`). Counts are those verified in each folder's DATASET.md.

use std::path::PathBuf;

use veil_data::{DatasetId, load};

fn root() -> PathBuf {
    PathBuf::from(std::env::var_os("VEIL_DATA").expect(
        "these tests read the real datasets: set VEIL_DATA to the data directory (../shared/data)",
    ))
}

fn in_unit_range(v: &[f32]) -> bool {
    v.iter().all(|x| (0.0..=1.0).contains(x))
}

#[test]
fn mnist_and_fashion_mnist_have_the_published_counts() {
    for id in [DatasetId::Mnist, DatasetId::FashionMnist] {
        let split = load(&id, Some(&root())).expect("load");
        assert_eq!(
            (split.train.len(), split.test.len()),
            (60_000, 10_000),
            "{id:?}"
        );
        assert_eq!(split.train.shape, [1, 28, 28]);
        assert!(in_unit_range(&split.test.samples));
        // Every class is present in both splits.
        assert!(split.train.class_counts().iter().all(|&c| c > 5000));
        assert!(split.test.class_counts().iter().all(|&c| c > 800));
    }
}

#[test]
fn gtsrb_subset_has_13070_train_and_3000_test_images_of_43_classes() {
    let split = load(&DatasetId::Gtsrb, Some(&root())).expect("load");
    assert_eq!((split.train.len(), split.test.len()), (13_070, 3_000));
    assert_eq!(split.train.shape, [3, 32, 32]);
    assert!(split.train.class_counts().iter().all(|&c| c > 0));
    assert!(split.test.class_counts().iter().filter(|&&c| c > 0).count() == 43);
    assert!(in_unit_range(&split.train.samples[..3 * 32 * 32 * 10]));
}

#[test]
fn cifar_fragment_has_258_records() {
    let split = load(&DatasetId::Cifar10, Some(&root())).expect("load");
    assert_eq!(split.train.len() + split.test.len(), 258);
    assert_eq!(split.train.shape, [3, 32, 32]);
}

#[test]
fn uci_sets_have_their_row_counts() {
    let post = load(&DatasetId::PostOperative, Some(&root())).expect("postop");
    assert_eq!(post.train.len() + post.test.len(), 90);
    assert_eq!(post.train.len(), 63);
    let mut all = post.train.class_counts();
    for (a, b) in all.iter_mut().zip(post.test.class_counts()) {
        *a += b;
    }
    assert_eq!(all, vec![2, 24, 64], "I, S, A as in the .names file");
    let act = load(&DatasetId::Activity, Some(&root())).expect("activity");
    assert_eq!(act.train.len() + act.test.len(), 75_128);
    assert_eq!(act.train.shape, [1, 1, 7]);
    assert!(act.test.len() > 15_000 && act.test.len() < 30_000);
    assert!(act.train.samples.iter().all(|v| v.is_finite()));
}
