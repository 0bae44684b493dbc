//! [`DatasetId`] (a dataset named on the command line) and [`load`], which finds it under the
//! data directory. Expected sub-folders of the data directory:
//!
//! | id | folder (first that exists) | files |
//! |---|---|---|
//! | `mnist` | `mnist/` | `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` |
//! | `fashion-mnist` | `fashion-mnist/` | same names as MNIST |
//! | `cifar10` | `cifar-10-batches-bin/`, `cifar10/`, `cifar10-subset/` | `data_batch_{1..5}.bin` + `test_batch.bin`; otherwise every `*.bin`, the last 20 % of records as test |
//! | `gtsrb` | `gtsrb/GTSRB`, `gtsrb-subset/GTSRB`, `GTSRB/` | official layout |
//! | `postop` | `uci-post-operative/` | `post-operative.data` |
//! | `activity` | `uci-activity-older-people/` | `S1_Dataset/`, `S2_Dataset/` |
//! | `folder:PATH` | `PATH` (absolute or relative to the working directory) | class sub-folders of images; 80/20 seeded split, or `train/` and `test/` sub-folders |
//! | `synthetic` | none | generated in code |

use std::path::{Path, PathBuf};

use crate::cifar::read_cifar10_batch;
use crate::idx::{find_raw_or_gz, read_idx_images, read_idx_labels};
use crate::{
    DataError, Dataset, Split, load_activity, load_gtsrb, load_image_folder, load_post_operative,
    synthetic,
};

/// Which dataset to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatasetId {
    /// MNIST digits.
    Mnist,
    /// Fashion-MNIST.
    FashionMnist,
    /// CIFAR-10 binary version.
    Cifar10,
    /// GTSRB (32x32).
    Gtsrb,
    /// UCI Post-operative patient data.
    PostOperative,
    /// UCI Activity recognition with healthy older people.
    Activity,
    /// A folder of images.
    Folder(PathBuf),
    /// Generated in code (1x28x28, 10 classes).
    Synthetic,
}

impl std::str::FromStr for DatasetId {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        if let Some(path) = s.strip_prefix("folder:") {
            return Ok(DatasetId::Folder(PathBuf::from(path)));
        }
        Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => DatasetId::Mnist,
            "fashion-mnist" | "fashion" | "fmnist" => DatasetId::FashionMnist,
            "cifar10" | "cifar-10" => DatasetId::Cifar10,
            "gtsrb" => DatasetId::Gtsrb,
            "postop" | "post-operative" => DatasetId::PostOperative,
            "activity" | "wearable" => DatasetId::Activity,
            "synthetic" => DatasetId::Synthetic,
            _ => return Err(DataError::UnknownDataset(s.to_string())),
        })
    }
}

impl DatasetId {
    /// Canonical name.
    pub fn name(&self) -> String {
        match self {
            DatasetId::Mnist => "mnist".into(),
            DatasetId::FashionMnist => "fashion-mnist".into(),
            DatasetId::Cifar10 => "cifar10".into(),
            DatasetId::Gtsrb => "gtsrb".into(),
            DatasetId::PostOperative => "postop".into(),
            DatasetId::Activity => "activity".into(),
            DatasetId::Folder(p) => format!("folder:{}", p.display()),
            DatasetId::Synthetic => "synthetic".into(),
        }
    }

    /// Whether loading needs a data directory.
    pub fn needs_data_dir(&self) -> bool {
        !matches!(self, DatasetId::Synthetic | DatasetId::Folder(_))
    }
}

/// The data directory: `explicit` if given, else `$VEIL_DATA`.
pub fn data_dir(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    match std::env::var_os("VEIL_DATA") {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(DataError::NoDataDir),
    }
}

fn first_dir(root: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    names
        .iter()
        .map(|n| root.join(n))
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::Missing {
            what: format!("dataset folder ({})", names.join(" or ")),
            path: root.to_path_buf(),
            hint: " (see the data directory layout in veil-data's docs)".into(),
        })
}

/// Loads the dataset a `--dataset` names, from `data` (`--data`) or `$VEIL_DATA` when it
/// needs files.
pub fn load_named(name: &str, data: Option<&Path>) -> Result<(DatasetId, Split), DataError> {
    let id: DatasetId = name.parse()?;
    let root = match id.needs_data_dir() {
        true => Some(data_dir(data)?),
        false => None,
    };
    let split = load(&id, root.as_deref())?;
    Ok((id, split))
}

/// Loads dataset `id`; `root` is the data directory (ignored for `synthetic` and folders).
pub fn load(id: &DatasetId, root: Option<&Path>) -> Result<Split, DataError> {
    let root_dir = || -> Result<PathBuf, DataError> {
        let r = root.ok_or(DataError::NoDataDir)?;
        if !r.is_dir() {
            return Err(DataError::Missing {
                what: "data directory".into(),
                path: r.to_path_buf(),
                hint: String::new(),
            });
        }
        Ok(r.to_path_buf())
    };
    match id {
        DatasetId::Mnist => load_idx_pair(&first_dir(&root_dir()?, &["mnist"])?, "mnist"),
        DatasetId::FashionMnist => load_idx_pair(
            &first_dir(&root_dir()?, &["fashion-mnist", "fashion_mnist"])?,
            "fashion-mnist",
        ),
        DatasetId::Cifar10 => load_cifar(&first_dir(
            &root_dir()?,
            &["cifar-10-batches-bin", "cifar10", "cifar10-subset"],
        )?),
        DatasetId::Gtsrb => {
            let r = root_dir()?;
            load_gtsrb(&first_dir(
                &r,
                &["gtsrb/GTSRB", "gtsrb-subset/GTSRB", "GTSRB", "gtsrb"],
            )?)
        }
        DatasetId::PostOperative => {
            load_post_operative(&first_dir(&root_dir()?, &["uci-post-operative", "postop"])?)
        }
        DatasetId::Activity => load_activity(&first_dir(
            &root_dir()?,
            &["uci-activity-older-people", "activity"],
        )?),
        DatasetId::Folder(path) => load_folder_split(path),
        DatasetId::Synthetic => Ok(synthetic::mnist_like(2000, 0)),
    }
}

fn load_idx_pair(dir: &Path, name: &str) -> Result<Split, DataError> {
    let part = |prefix: &str, split: &str| -> Result<Dataset, DataError> {
        let (n, r, c, samples) = read_idx_images(&find_raw_or_gz(
            dir,
            &format!("{prefix}-images-idx3-ubyte"),
        )?)?;
        let lpath = find_raw_or_gz(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let labels = read_idx_labels(&lpath, 10)?;
        if labels.len() != n {
            return Err(DataError::format(
                &lpath,
                format!("{} labels for {n} images", labels.len()),
            ));
        }
        Ok(Dataset {
            name: format!("{name}/{split}"),
            shape: [1, r, c],
            classes: 10,
            samples,
            labels,
        })
    };
    Ok(Split {
        train: part("train", "train")?,
        test: part("t10k", "test")?,
    })
}

fn load_cifar(dir: &Path) -> Result<Split, DataError> {
    let make = |name: &str, files: &[PathBuf]| -> Result<Dataset, DataError> {
        let mut samples = Vec::new();
        let mut labels = Vec::new();
        for f in files {
            let (l, s) = read_cifar10_batch(f)?;
            labels.extend(l);
            samples.extend(s);
        }
        Ok(Dataset {
            name: name.into(),
            shape: [3, 32, 32],
            classes: 10,
            samples,
            labels,
        })
    };
    let test = dir.join("test_batch.bin");
    if test.is_file() {
        let train: Vec<PathBuf> = (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .filter(|p| p.is_file())
            .collect();
        return Ok(Split {
            train: make("cifar10/train", &train)?,
            test: make("cifar10/test", &[test])?,
        });
    }
    let mut bins: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    bins.sort();
    if bins.is_empty() {
        return Err(DataError::Missing {
            what: "CIFAR-10 *.bin batches".into(),
            path: dir.to_path_buf(),
            hint: String::new(),
        });
    }
    let all = make("cifar10", &bins)?;
    let cut = all.len() * 4 / 5;
    let idx: Vec<usize> = (0..all.len()).collect();
    Ok(Split {
        train: all.select(&idx[..cut], "cifar10/train"),
        test: all.select(&idx[cut..], "cifar10/test"),
    })
}

fn load_folder_split(path: &Path) -> Result<Split, DataError> {
    let (train_dir, test_dir) = (path.join("train"), path.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        let train = load_image_folder(&train_dir)?;
        let classes: Vec<String> = crate::folder::class_folders(&train_dir)?
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let mut test = crate::folder::load_image_folder_with_classes(&test_dir, &classes)?;
        if test.shape != train.shape {
            return Err(DataError::format(
                &test_dir,
                format!(
                    "test images are {:?}, training images {:?}",
                    test.shape, train.shape
                ),
            ));
        }
        test.classes = train.classes;
        return Ok(Split { train, test });
    }
    let all = load_image_folder(path)?;
    let (train, test) = all.shuffled_split(0.8, 0);
    Ok(Split { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!("MNIST".parse::<DatasetId>().expect("ok"), DatasetId::Mnist);
        assert_eq!(
            "fashion_mnist".parse::<DatasetId>().expect("ok"),
            DatasetId::FashionMnist
        );
        assert!(matches!(
            "folder:/x".parse::<DatasetId>(),
            Ok(DatasetId::Folder(_))
        ));
        assert!("imagenet".parse::<DatasetId>().is_err());
    }

    #[test]
    fn missing_directories_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = load(&DatasetId::Mnist, Some(dir.path()))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("mnist"), "{err}");
        assert!(matches!(
            load(&DatasetId::Gtsrb, None),
            Err(DataError::NoDataDir)
        ));
        let synth = load(&DatasetId::Synthetic, None).expect("synthetic");
        assert_eq!(synth.train.shape, [1, 28, 28]);
    }
}
