//! `prifft._native`: prifft's federated-learning stack and secure-computation pieces for Python.
//!
//! The Python package `prifft` (python/prifft/) re-exports this module and adds the Flower
//! integration. Every call that computes releases the interpreter ([`Python::detach`]) before any
//! Rust work starts — rayon's workers never wait on a caller that holds it — and copies nothing
//! it can read in place (contiguous numpy inputs are read as slices). Errors become Python
//! exceptions with prifft's own messages: `ValueError` for bad input, `OSError` for files
//! (`FileNotFoundError` for a missing data set).

use std::path::PathBuf;

use ndarray::Array2;
use numpy::{
    PyArray1, PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn,
};
use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use prifft::fl::data;
use prifft::fl::model::{SgdConfig, SimpleCnn as RustCnn};
use prifft::fl::rounds::{Algo, LocalUpdate, local_update};

/// prifft's error as the Python exception a caller expects.
fn py_err(e: prifft::Error) -> PyErr {
    use prifft::Error as E;
    match e {
        E::Io { .. } => PyOSError::new_err(e.to_string()),
        E::Net(_) | E::Session(_) | E::Gpu(_) | E::During { .. } => {
            PyRuntimeError::new_err(e.to_string())
        }
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn value_err(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// A contiguous numpy input, or an error naming the argument.
fn slice<'a, T: numpy::Element, D: ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        value_err(format!("{what}: a C-contiguous array is needed (numpy.ascontiguousarray)"))
    })
}

/// Indices as `usize`, refusing negative ones.
fn indices(a: &PyReadonlyArray1<'_, i64>, what: &str) -> PyResult<Vec<usize>> {
    slice(a, what)?
        .iter()
        .map(|&i| usize::try_from(i).map_err(|_| value_err(format!("{what}: negative index {i}"))))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Data

/// A labelled image set (images × rows × cols, float32; labels below `classes`).
#[pyclass(module = "prifft._native", frozen)]
struct Dataset {
    inner: data::Dataset,
}

#[pymethods]
impl Dataset {
    /// A data set from numpy arrays: `images` float32 of shape (n, rows, cols) or
    /// (n, 1, rows, cols), `labels` integers in [0, classes).
    #[new]
    #[pyo3(signature = (images, labels, classes))]
    fn new(
        images: PyReadonlyArrayDyn<'_, f32>,
        labels: PyReadonlyArray1<'_, i64>,
        classes: usize,
    ) -> PyResult<Self> {
        let shape = images.shape().to_vec();
        let (n, rows, cols) = match shape[..] {
            [n, r, c] | [n, 1, r, c] => (n, r, c),
            _ => {
                return Err(value_err(format!(
                    "images: expected shape (n, rows, cols) or (n, 1, rows, cols), found {shape:?}"
                )));
            }
        };
        let labels_in = slice(&labels, "labels")?;
        if labels_in.len() != n {
            return Err(value_err(format!("{n} images but {} labels", labels_in.len())));
        }
        if classes == 0 || classes > 256 {
            return Err(value_err(format!("classes must be in 1..=256, found {classes}")));
        }
        let labels = labels_in
            .iter()
            .map(|&y| {
                u8::try_from(y)
                    .ok()
                    .filter(|&y| (y as usize) < classes)
                    .ok_or_else(|| value_err(format!("label {y} is outside 0..{classes}")))
            })
            .collect::<PyResult<Vec<u8>>>()?;
        let images = slice(&images, "images")?.to_vec();
        Ok(Self { inner: data::Dataset { images, labels, rows, cols, classes } })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Number of classes.
    #[getter]
    fn classes(&self) -> usize {
        self.inner.classes
    }

    /// (rows, cols) of every image.
    #[getter]
    fn image_shape(&self) -> (usize, usize) {
        (self.inner.rows, self.inner.cols)
    }

    /// The images as a float32 array (n, rows, cols) (a copy).
    fn images<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let d = &self.inner;
        let flat = PyArray1::from_slice(py, &d.images);
        flat.reshape(vec![d.len(), d.rows, d.cols])
    }

    /// The labels as an int64 array (a copy).
    fn labels<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, self.inner.labels.iter().map(|&y| y as i64).collect())
    }

    /// Samples per class.
    fn class_counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, self.inner.class_counts().iter().map(|&c| c as i64).collect())
    }

    /// The samples at `indices`, in that order, as a new data set.
    fn subset(&self, indices: PyReadonlyArray1<'_, i64>) -> PyResult<Self> {
        let idx = self::indices(&indices, "indices")?;
        check_indices(&idx, self.inner.len())?;
        Ok(Self { inner: self.inner.subset(&idx) })
    }

    fn __repr__(&self) -> String {
        let d = &self.inner;
        format!("Dataset({} images of {}×{}, {} classes)", d.len(), d.rows, d.cols, d.classes)
    }
}

fn check_indices(idx: &[usize], len: usize) -> PyResult<()> {
    match idx.iter().find(|&&i| i >= len) {
        Some(bad) => {
            Err(value_err(format!("index {bad} is outside the data set of {len} samples")))
        }
        None => Ok(()),
    }
}

/// Fashion-MNIST's 60,000 training and 10,000 test images from the IDX files in `dir`
/// (default: Debian's dataset-fashion-mnist, /usr/share/datasets/fashion-mnist). With
/// `standardize`, both sets are mapped to zero mean and unit variance with the training set's
/// pixel statistics, as `prifft fl` does.
#[pyfunction]
#[pyo3(signature = (dir=None, standardize=true))]
fn load_fashion_mnist(
    py: Python<'_>,
    dir: Option<PathBuf>,
    standardize: bool,
) -> PyResult<(Dataset, Dataset)> {
    load(py, standardize, move || data::fashion_mnist(dir.as_deref()))
}

/// MNIST-5k (the project's small real data set, assets/mnist_5k.csv.gz or `path`), split and
/// standardised as `prifft fl --dataset mnist-5k` does.
#[pyfunction]
#[pyo3(signature = (path=None, standardize=true))]
fn load_mnist_5k(
    py: Python<'_>,
    path: Option<PathBuf>,
    standardize: bool,
) -> PyResult<(Dataset, Dataset)> {
    load(py, standardize, move || data::mnist_5k(path.as_deref()))
}

fn load(
    py: Python<'_>,
    standardize: bool,
    f: impl FnOnce() -> prifft::Result<(data::Dataset, data::Dataset)> + Send,
) -> PyResult<(Dataset, Dataset)> {
    let (mut train, mut test) = py.detach(f).map_err(|e| match e {
        // The loaders report a missing file as data error with its path and what to install.
        prifft::Error::Data(msg) if msg.contains(" not found") => PyFileNotFoundError::new_err(msg),
        other => py_err(other),
    })?;
    if standardize {
        data::standardize(&mut train, &mut test);
    }
    Ok((Dataset { inner: train }, Dataset { inner: test }))
}

/// Split `dataset` among `clients`; returns each client's sample indices. `scheme`:
/// "dirichlet" (label skew with concentration `beta`, at least 10 samples per client: the split
/// `prifft fl --seeds` makes for `seed`), "iid" (uniformly at random, equal sizes ± 1) or
/// "shards" (sorted by label, cut into clients × `shards_per_client` shards, dealt at random).
#[pyfunction]
#[pyo3(signature = (dataset, clients, beta=0.5, seed=1, scheme="dirichlet", shards_per_client=2))]
fn partition<'py>(
    py: Python<'py>,
    dataset: &Dataset,
    clients: usize,
    beta: f64,
    seed: u64,
    scheme: &str,
    shards_per_client: usize,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    use prifft::fl::partition::{Scheme, seeded};
    let d = &dataset.inner;
    let scheme = match scheme {
        "dirichlet" if beta.is_finite() && beta > 0.0 => Scheme::dirichlet(beta),
        "dirichlet" => return Err(value_err(format!("beta must be positive, found {beta}"))),
        "iid" => Scheme::Iid,
        "shards" => Scheme::Shards { per_client: shards_per_client },
        other => {
            return Err(value_err(format!(
                "unknown scheme {other:?}: \"dirichlet\", \"iid\" or \"shards\""
            )));
        }
    };
    let parts =
        py.detach(|| seeded(&d.labels, d.classes, clients, scheme, seed)).map_err(py_err)?;
    Ok(parts
        .into_iter()
        .map(|p| PyArray1::from_vec(py, p.into_iter().map(|i| i as i64).collect()))
        .collect())
}

/// The indices shuffled as `prifft fl` shuffles a client's data for each local epoch: one
/// ChaCha20 generator seeded with `seed`, `epochs` orders one after another.
#[pyfunction]
#[pyo3(signature = (indices, seed, epochs=1))]
fn epoch_orders<'py>(
    py: Python<'py>,
    indices: PyReadonlyArray1<'py, i64>,
    seed: u64,
    epochs: usize,
) -> PyResult<Vec<Bound<'py, PyArray1<i64>>>> {
    use rand::SeedableRng;
    let idx = self::indices(&indices, "indices")?;
    let mut rng = prifft::prg::ChaCha20Rng::seed_from_u64(seed);
    Ok((0..epochs)
        .map(|_| {
            let order = prifft::fl::model::shuffled(&idx, &mut rng);
            PyArray1::from_vec(py, order.into_iter().map(|i| i as i64).collect())
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The model

/// The federated network of `prifft fl`: the simple CNN (two 5×5 convolutions, two linear
/// layers) for 28×28 images, a projection head 84 → 84 → 256 and the classifier on its output
/// (`normalize`: FedProc's unit-norm z before the classifier). `seed` fixes the initialisation
/// (`prifft fl` draws it from its run's seed; see `global_model`).
#[pyclass(module = "prifft._native")]
struct SimpleCnn {
    inner: RustCnn,
}

/// Per-class sums of z and per-class counts.
type ClassSums<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray1<i64>>);

/// The arrays under PyTorch's `state_dict` names and shapes.
fn named(model: &mut RustCnn) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    model.named_weights()
}

#[pymethods]
impl SimpleCnn {
    #[new]
    #[pyo3(signature = (classes=10, normalize=false, seed=None))]
    fn new(classes: usize, normalize: bool, seed: Option<u64>) -> PyResult<Self> {
        use rand::SeedableRng;
        if classes == 0 {
            return Err(value_err("classes must be at least 1"));
        }
        let mut rng = match seed {
            Some(s) => prifft::prg::ChaCha20Rng::seed_from_u64(s),
            None => prifft::prg::os_rng(),
        };
        Ok(Self { inner: RustCnn::with_projection(classes, normalize, &mut rng) })
    }

    /// The initial global model of `prifft fl`'s run of `seed` for `algo` (FedProc's network
    /// normalises z, the others' do not): the same weights that run starts from.
    #[staticmethod]
    #[pyo3(signature = (algo, seed, classes=10))]
    fn global_model(algo: &str, seed: u64, classes: usize) -> PyResult<Self> {
        let normalize = parse_algo(algo)? == "fedproc";
        Self::new(classes, normalize, Some(seed))
    }

    /// Names of the arrays of `get_weights` (PyTorch's `state_dict` names: conv1.weight, …).
    fn weight_names(&mut self) -> Vec<String> {
        named(&mut self.inner).into_iter().map(|(n, _, _)| n).collect()
    }

    /// The weights as float32 arrays in PyTorch's shapes (conv1.weight (6, 1, 5, 5), …).
    fn get_weights<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        named(&mut self.inner)
            .into_iter()
            .map(|(_, shape, values)| PyArray1::from_vec(py, values).reshape(shape))
            .collect()
    }

    /// Overwrite the weights (arrays as `get_weights` returns them, any float dtype is cast by
    /// the caller) and reset the optimiser's momentum.
    fn set_weights(&mut self, weights: Vec<PyReadonlyArrayDyn<'_, f32>>) -> PyResult<()> {
        let arrays = to_rust_weights(&mut self.inner, &weights)?;
        self.inner.set_weights(&arrays);
        Ok(())
    }

    /// Width of the representation z that prototypes live in (256).
    #[getter]
    fn embedding_width(&self) -> usize {
        self.inner.embedding_width()
    }

    /// One client's local update, as every round of `prifft fl` runs it: from this model's
    /// weights with a fresh optimiser, `epochs` passes over `indices` of `data`, each in the
    /// order of `epoch_orders(indices, seed, epochs)`, with `algo`'s loss — "fedavg";
    /// "fedprox" (μ `mu`, towards this model's weights); "moon" (μ `mu`, τ `tau`, the frozen
    /// global model = this one, the negative = `previous` weights or this model); "fedproc"
    /// (α `alpha`, τ `tau`, the global `prototypes` (classes × 256) when α > 0). Returns the
    /// trained model; this one is unchanged.
    #[pyo3(signature = (data, indices, *, algo="fedavg", seed, epochs=1, lr=0.01, momentum=0.9,
        weight_decay=1e-5, batch=64, mu=None, tau=None, alpha=0.0, prototypes=None, previous=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn local_update(
        &mut self,
        py: Python<'_>,
        data: &Dataset,
        indices: PyReadonlyArray1<'_, i64>,
        algo: &str,
        seed: u64,
        epochs: usize,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
        batch: usize,
        mu: Option<f32>,
        tau: Option<f32>,
        alpha: f32,
        prototypes: Option<PyReadonlyArray2<'_, f32>>,
        previous: Option<Vec<PyReadonlyArrayDyn<'_, f32>>>,
    ) -> PyResult<SimpleCnn> {
        let algo = algorithm(algo, mu, tau)?;
        let sgd = sgd_config(lr, momentum, weight_decay, batch)?;
        if epochs == 0 {
            return Err(value_err("epochs must be at least 1"));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(value_err(format!("alpha must be in [0, 1], found {alpha}")));
        }
        let idx = self::indices(&indices, "indices")?;
        let prototypes = prototypes.map(|p| p.as_array().to_owned());
        let previous = previous.map(|w| to_rust_weights(&mut self.inner, &w)).transpose()?;
        let global = &self.inner;
        let (trained, _) = py
            .detach(|| {
                let update = LocalUpdate {
                    algo,
                    alpha,
                    prototypes: prototypes.as_ref(),
                    previous: previous.as_deref(),
                };
                local_update(global, &update, &data.inner, &idx, epochs, &sgd, seed)
            })
            .map_err(py_err)?;
        Ok(SimpleCnn { inner: trained })
    }

    /// One pass over `order` of `data` in batches of `batch` (the last one partial), cross-
    /// entropy loss, continuing this model's optimiser state; returns the mean batch loss.
    #[pyo3(signature = (data, order, *, lr=0.01, momentum=0.9, weight_decay=1e-5, batch=64))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn train_epoch(
        &mut self,
        py: Python<'_>,
        data: &Dataset,
        order: PyReadonlyArray1<'_, i64>,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
        batch: usize,
    ) -> PyResult<f32> {
        let sgd = sgd_config(lr, momentum, weight_decay, batch)?;
        let order = self::indices(&order, "order")?;
        check_indices(&order, data.inner.len())?;
        self.inner.check_data(&data.inner).map_err(py_err)?;
        let model = &mut self.inner;
        Ok(py.detach(|| {
            let mut loss = prifft::fl::model::LocalLoss::CrossEntropy;
            model.train_in_order(&data.inner, &order, &sgd, &mut loss)
        }))
    }

    /// Fraction of `data` classified correctly.
    fn evaluate(&mut self, py: Python<'_>, data: &Dataset) -> PyResult<f64> {
        self.inner.check_data(&data.inner).map_err(py_err)?;
        let model = &mut self.inner;
        Ok(py.detach(|| model.accuracy(&data.inner)))
    }

    /// FedProc's upload: per-class sums of z (classes × 256, float32) and per-class counts
    /// (int64) over `indices` of `data` (all of it by default).
    #[pyo3(signature = (data, indices=None))]
    fn class_sums<'py>(
        &mut self,
        py: Python<'py>,
        data: &Dataset,
        indices: Option<PyReadonlyArray1<'py, i64>>,
    ) -> PyResult<ClassSums<'py>> {
        let idx = match indices {
            Some(i) => self::indices(&i, "indices")?,
            None => (0..data.inner.len()).collect(),
        };
        check_indices(&idx, data.inner.len())?;
        self.inner.check_data(&data.inner).map_err(py_err)?;
        let model = &mut self.inner;
        let (sums, counts) = py.detach(|| model.class_sums(&data.inner, &idx));
        Ok((
            PyArray2::from_owned_array(py, sums),
            PyArray1::from_vec(py, counts.into_iter().map(|c| c as i64).collect()),
        ))
    }

    /// An independent copy (weights and optimiser state).
    fn copy(&self) -> Self {
        Self { inner: self.inner.clone() }
    }

    fn __repr__(&mut self) -> String {
        let params: usize = named(&mut self.inner).iter().map(|(_, _, v)| v.len()).sum();
        format!("SimpleCnn({params} parameters, z width {})", self.inner.embedding_width())
    }
}

/// Weights in PyTorch's shapes → the model's own arrays, checking names' count and shapes.
fn to_rust_weights(
    model: &mut RustCnn,
    weights: &[PyReadonlyArrayDyn<'_, f32>],
) -> PyResult<Vec<Array2<f32>>> {
    let expected = named(model);
    let current = model.weights();
    if weights.len() != expected.len() {
        return Err(value_err(format!(
            "expected {} weight arrays ({}), found {}",
            expected.len(),
            expected.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>().join(", "),
            weights.len()
        )));
    }
    weights
        .iter()
        .zip(expected.iter().zip(&current))
        .map(|(w, ((name, shape, _), cur))| {
            if w.shape() != &shape[..] {
                return Err(value_err(format!(
                    "{name}: expected shape {shape:?}, found {:?}",
                    w.shape()
                )));
            }
            let values: Vec<f32> = w.as_array().iter().copied().collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(value_err(format!("{name}: a weight is NaN or infinite")));
            }
            Array2::from_shape_vec(cur.dim(), values).map_err(|e| value_err(format!("{name}: {e}")))
        })
        .collect()
}

fn parse_algo(algo: &str) -> PyResult<&'static str> {
    match algo.to_ascii_lowercase().as_str() {
        "fedavg" => Ok("fedavg"),
        "fedprox" => Ok("fedprox"),
        "moon" => Ok("moon"),
        "fedproc" => Ok("fedproc"),
        other => Err(value_err(format!(
            "unknown algorithm {other:?}: one of \"fedavg\", \"fedprox\", \"moon\", \"fedproc\""
        ))),
    }
}

/// The algorithm with its settings; `prifft fl`'s defaults where they are not given (FedProx
/// μ = 0.01, MOON μ = 1 and τ = 0.5, FedProc τ = 1).
fn algorithm(algo: &str, mu: Option<f32>, tau: Option<f32>) -> PyResult<Algo> {
    let positive = |name: &str, v: f32| {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(value_err(format!("{name} must be positive, found {v}")))
        }
    };
    Ok(match parse_algo(algo)? {
        "fedavg" => Algo::FedAvg,
        "fedprox" => Algo::FedProx { mu: positive("mu", mu.unwrap_or(0.01))? },
        "moon" => Algo::Moon {
            mu: positive("mu", mu.unwrap_or(1.0))?,
            tau: positive("tau", tau.unwrap_or(0.5))?,
        },
        _ => Algo::FedProc { tau: positive("tau", tau.unwrap_or(1.0))?, horizon: None },
    })
}

fn sgd_config(lr: f32, momentum: f32, weight_decay: f32, batch: usize) -> PyResult<SgdConfig> {
    if !(lr.is_finite() && lr > 0.0) || batch == 0 {
        return Err(value_err(format!(
            "lr must be positive and batch at least 1, found lr {lr}, batch {batch}"
        )));
    }
    if !((0.0..1.0).contains(&momentum) && weight_decay.is_finite() && weight_decay >= 0.0) {
        return Err(value_err(format!(
            "momentum must be in [0, 1) and weight_decay ≥ 0, found {momentum}, {weight_decay}"
        )));
    }
    Ok(SgdConfig { lr, momentum, weight_decay, batch })
}

/// Per round, the sampled clients with their local seeds.
type RoundPlan = Vec<Vec<(usize, u64)>>;

/// `prifft fl`'s random choices for its run of `seed`: the initial global model (as
/// `SimpleCnn.global_model`), and per round the sampled clients — round(fraction · clients),
/// at least one — in the order their uploads are summed, each with the seed of its local
/// update. A driver that follows it (a Flower strategy, a loop over `local_update`) trains the
/// same models as `prifft fl --seeds`.
#[pyfunction]
#[pyo3(signature = (algo, seed, clients, rounds, fraction=1.0, classes=10))]
fn schedule(
    algo: &str,
    seed: u64,
    clients: usize,
    rounds: usize,
    fraction: f64,
    classes: usize,
) -> PyResult<(SimpleCnn, RoundPlan)> {
    if clients == 0 || classes == 0 || !(fraction > 0.0 && fraction <= 1.0) {
        return Err(value_err(format!(
            "clients and classes must be at least 1 and fraction in (0, 1], found {clients}, {classes}, {fraction}"
        )));
    }
    let cfg = prifft::fl::rounds::FlConfig {
        rounds,
        local_epochs: 1,
        fraction,
        sgd: SgdConfig::default(),
        seed,
        secure_agg: false,
    };
    let plan = prifft::fl::rounds::schedule(algorithm(algo, None, None)?, classes, clients, &cfg);
    Ok((SimpleCnn { inner: plan.initial }, plan.rounds))
}

// ---------------------------------------------------------------------------------------------
// Secure aggregation

/// One client's key pair for a secure-aggregation session (pairwise masks, Bonawitz et al.;
/// prifft::fl::secagg): fresh from the OS-seeded CSPRNG. Share `public_key` with the other
/// participants through the server; `mask` then one-time-pads an upload so that only the sum of
/// all participants' uploads is readable.
#[pyclass(module = "prifft._native", frozen)]
struct SecAggParticipant {
    inner: prifft::fl::secagg::Participant,
}

#[pymethods]
impl SecAggParticipant {
    /// A fresh key pair for participant `index`, or (with `secret`, 32 bytes from `secret_key`)
    /// the pair restored.
    #[new]
    #[pyo3(signature = (index, secret=None))]
    fn new(index: usize, secret: Option<&[u8]>) -> PyResult<Self> {
        use prifft::fl::secagg::Participant;
        Ok(Self {
            inner: match secret {
                None => Participant::new(index),
                Some(s) => Participant::restore(
                    index,
                    <[u8; 32]>::try_from(s).map_err(|_| {
                        value_err(format!("secret: 32 bytes needed, found {}", s.len()))
                    })?,
                ),
            },
        })
    }

    /// The secret key (32 bytes): only for a node that must keep its pair between the key
    /// exchange and the upload, in storage no one else reads (a Flower node's state).
    #[getter]
    fn secret_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.secret_key()[..])
    }

    /// This participant's index.
    #[getter]
    fn index(&self) -> usize {
        self.inner.index
    }

    /// The X25519 public key (32 bytes).
    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.public.as_bytes())
    }

    /// `values` (float64) in fixed point with `frac_bits` fractional bits, masked for `round` of
    /// `session` (16 bytes) given every participant's public key in index order; uint64.
    #[pyo3(signature = (values, public_keys, session, round, frac_bits=24))]
    fn mask<'py>(
        &self,
        py: Python<'py>,
        values: PyReadonlyArray1<'py, f64>,
        public_keys: Vec<Vec<u8>>,
        session: Vec<u8>,
        round: u64,
        frac_bits: u32,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let fixed = prifft::ring::FixedPoint::new(frac_bits).map_err(|e| py_err(e.into()))?;
        let publics = public_keys
            .iter()
            .enumerate()
            .map(|(j, k)| {
                <[u8; 32]>::try_from(k.as_slice()).map(x25519_public).map_err(|_| {
                    value_err(format!("public key {j}: 32 bytes needed, found {}", k.len()))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let session =
            <[u8; 16]>::try_from(session.as_slice()).map(prifft::fl::secagg::SessionId).map_err(
                |_| value_err(format!("session: 16 bytes needed, found {}", session.len())),
            )?;
        let values = slice(&values, "values")?;
        let masked = py
            .detach(|| self.inner.mask(values, fixed, &publics, &session, round))
            .map_err(py_err)?;
        Ok(PyArray1::from_vec(py, masked))
    }
}

fn x25519_public(bytes: [u8; 32]) -> prifft::fl::secagg::PublicKey {
    prifft::fl::secagg::PublicKey::from(bytes)
}

/// A fresh random session id (16 bytes) for secure aggregation.
#[pyfunction]
fn secagg_session_id<'py>(py: Python<'py>) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &prifft::fl::secagg::SessionId::random().0)
}

/// The server's side: the sum of the masked uploads of all `participants`, decoded (float64).
#[pyfunction]
#[pyo3(signature = (uploads, participants, frac_bits=24))]
fn secagg_aggregate<'py>(
    py: Python<'py>,
    uploads: Vec<PyReadonlyArray1<'py, u64>>,
    participants: usize,
    frac_bits: u32,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let fixed = prifft::ring::FixedPoint::new(frac_bits).map_err(|e| py_err(e.into()))?;
    let owned = uploads
        .iter()
        .map(|u| slice(u, "uploads").map(<[u64]>::to_vec))
        .collect::<PyResult<Vec<_>>>()?;
    let total = prifft::fl::secagg::aggregate(&owned, participants, fixed).map_err(py_err)?;
    Ok(PyArray1::from_vec(py, total))
}

// ---------------------------------------------------------------------------------------------
// FSS keys

/// Dealer: FSS keys from the OS-seeded CSPRNG, one per (α, β) pair on `bits`-bit inputs —
/// `scheme` "dcf" for `β·[x < α]`, "dpf" for `β·[x = α]`. Returns (party 0's keys, party 1's
/// keys) as bytes; each party evaluates its own with `fss_eval`, and the two outputs add up
/// (mod 2^64) to the function (the package's `dcf_keygen` / `dpf_keygen`).
#[pyfunction]
fn fss_keygen<'py>(
    py: Python<'py>,
    scheme: &str,
    bits: u32,
    alphas: PyReadonlyArray1<'py, u64>,
    betas: PyReadonlyArray1<'py, u64>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let scheme = match scheme {
        "dcf" => prifft::fss::Scheme::Dcf,
        "dpf" => prifft::fss::Scheme::Dpf,
        other => return Err(value_err(format!("unknown scheme {other:?}: \"dcf\" or \"dpf\""))),
    };
    keygen(py, scheme, bits, &alphas, &betas)
}

fn keygen<'py>(
    py: Python<'py>,
    scheme: prifft::fss::Scheme,
    bits: u32,
    alphas: &PyReadonlyArray1<'py, u64>,
    betas: &PyReadonlyArray1<'py, u64>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (alphas, betas) = (slice(alphas, "alphas")?, slice(betas, "betas")?);
    let [k0, k1] = py
        .detach(|| {
            let mut rng = prifft::prg::os_rng();
            match scheme {
                prifft::fss::Scheme::Dcf => prifft::fss::dcf::keygen(bits, alphas, betas, &mut rng),
                _ => prifft::fss::dpf::keygen(bits, alphas, betas, &mut rng),
            }
        })
        .map_err(|e| py_err(e.into()))?;
    Ok((PyBytes::new(py, &k0.to_bytes()), PyBytes::new(py, &k1.to_bytes())))
}

/// One party's outputs of its DCF or DPF keys (bytes from `dcf_keygen`/`dpf_keygen`) at the
/// inputs `xs` (uint64, one per key): uint64 shares. Malformed or truncated keys, or a length
/// that differs from the key count, raise `ValueError`.
#[pyfunction]
fn fss_eval<'py>(
    py: Python<'py>,
    keys: &[u8],
    xs: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let xs = slice(&xs, "xs")?;
    let out = py
        .detach(|| {
            let batch = prifft::fss::KeyBatch::from_bytes(keys)?;
            let mut out = vec![0u64; xs.len() * batch.words() as usize];
            match batch.scheme() {
                prifft::fss::Scheme::Dcf => prifft::fss::dcf::eval(&batch, xs, &mut out)?,
                prifft::fss::Scheme::Dpf => prifft::fss::dpf::eval(&batch, xs, &mut out)?,
                other => {
                    return Err(prifft::fss::KeyError::Mismatch {
                        what: "fss_eval keys",
                        expected: "DCF or DPF keys".into(),
                        found: format!("{other:?} keys"),
                    });
                }
            }
            Ok::<_, prifft::fss::KeyError>(out)
        })
        .map_err(|e| py_err(e.into()))?;
    Ok(PyArray1::from_vec(py, out))
}

/// prifft's federated-learning stack and secure-computation pieces (see the `prifft` package).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Dataset>()?;
    m.add_class::<SimpleCnn>()?;
    m.add_class::<SecAggParticipant>()?;
    m.add_function(wrap_pyfunction!(load_fashion_mnist, m)?)?;
    m.add_function(wrap_pyfunction!(load_mnist_5k, m)?)?;
    m.add_function(wrap_pyfunction!(partition, m)?)?;
    m.add_function(wrap_pyfunction!(epoch_orders, m)?)?;
    m.add_function(wrap_pyfunction!(schedule, m)?)?;
    m.add_function(wrap_pyfunction!(secagg_session_id, m)?)?;
    m.add_function(wrap_pyfunction!(secagg_aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(fss_keygen, m)?)?;
    m.add_function(wrap_pyfunction!(fss_eval, m)?)?;
    Ok(())
}
