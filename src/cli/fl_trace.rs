//! `prifft fl-trace`: round 1 of `prifft fl`'s FedAvg for one seed, written as a safetensors
//! trace for `scripts/xcheck_fl.py` (which replays it in PyTorch and compares layer by layer).

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;

use prifft::{Error, Result};

use super::fl::{DatasetArg, InputArg, load_dataset, seed_partition};

/// Arguments of `prifft fl-trace`.
#[derive(Args, Debug)]
pub struct FlTraceArgs {
    /// Dirichlet concentration β.
    #[arg(long, default_value_t = 0.5)]
    beta: f64,
    /// Clients (all take part in round 1).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// The seed: the same partition, initialisation and batch orders as `prifft fl`'s run of
    /// this seed (`prifft fl --seeds K` runs seeds 1..=K).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Local epochs.
    #[arg(long, default_value_t = 1)]
    local_epochs: usize,
    /// Local SGD learning rate (momentum 0.9, weight decay 1e-5).
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Local batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Input pixels, as `prifft fl --input`.
    #[arg(long, value_enum, default_value = "standardize")]
    input: InputArg,
    /// The data set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetArg,
    /// Directory of the Fashion-MNIST IDX files, or the MNIST-5k file.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output safetensors file.
    #[arg(long, default_value = "fl_trace.safetensors")]
    out: PathBuf,
}

/// Run round 1 and write the trace.
///
/// # Errors
/// Bad options, missing data, an unwritable output.
pub fn run(args: FlTraceArgs) -> Result<()> {
    let FlTraceArgs { beta, clients, seed, local_epochs, lr, batch, input, dataset, data, out } =
        args;
    if clients == 0 || local_epochs == 0 || batch == 0 || !(lr.is_finite() && lr > 0.0) {
        return Err(Error::Usage(
            "--clients, --local-epochs and --batch must be at least 1 and --lr positive".into(),
        ));
    }
    use prifft::fl::rounds::{self, Algo, FlConfig, RoundTrace};
    let (name, train, test, stats) = load_dataset(dataset, data.as_deref(), input)?;
    let parts = seed_partition(&train, clients, beta, seed)?;
    let sgd = prifft::fl::model::SgdConfig { lr, batch, ..Default::default() };
    let cfg = FlConfig { rounds: 1, local_epochs, fraction: 1.0, sgd, seed, secure_agg: false };
    let mut trace = RoundTrace::default();
    rounds::run_traced(Algo::FedAvg, &train, &test, &parts, &cfg, |_, _| {}, Some(&mut trace))?;
    let data_dir = data.map_or_else(
        || match dataset {
            DatasetArg::FashionMnist => prifft::fl::data::FASHION_MNIST_DIR.to_string(),
            DatasetArg::Mnist5k => prifft::fl::data::MNIST_5K.to_string(),
        },
        |p| p.display().to_string(),
    );
    let mut meta: HashMap<String, String> = [
        ("algo", "fedavg".to_string()),
        ("dataset", name.to_string()),
        ("data", data_dir),
        ("beta", beta.to_string()),
        ("clients", clients.to_string()),
        ("seed", seed.to_string()),
        ("local_epochs", local_epochs.to_string()),
        ("lr", sgd.lr.to_string()),
        ("momentum", sgd.momentum.to_string()),
        ("weight_decay", sgd.weight_decay.to_string()),
        ("batch", batch.to_string()),
        ("test_accuracy", trace.accuracy.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(s) = stats {
        meta.insert("pixel_mean".into(), s.mean.to_string());
        meta.insert("pixel_std".into(), s.std.to_string());
    }
    prifft::fl::trace::write(&out, &trace, meta)?;
    println!(
        "{name}, {clients} clients, β = {beta}, seed {seed}: round 1 of FedAvg, test accuracy {:.2} %; trace in {}",
        100.0 * trace.accuracy,
        out.display()
    );
    println!(
        "check it against PyTorch: python3 scripts/xcheck_fl.py {} (needs torch, numpy and safetensors)",
        out.display()
    );
    Ok(())
}
