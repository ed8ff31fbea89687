//! `prifft centralized`: the simple CNN trained on all of Fashion-MNIST (no federation).

use std::path::PathBuf;

use clap::Args;

use prifft::Result;

use super::fl::{DatasetArg, InputArg, load_dataset};

/// Arguments of `prifft centralized`.
#[derive(Args, Debug)]
pub struct CentralizedArgs {
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of initialisation and shuffling (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory of the Fashion-MNIST IDX files.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input pixels, as `prifft fl --input`.
    #[arg(long, value_enum, default_value = "standardize")]
    input: InputArg,
}

/// Train and print the test accuracy after each epoch.
///
/// # Errors
/// Missing or malformed data.
pub fn run(args: CentralizedArgs) -> Result<()> {
    let CentralizedArgs { epochs, seed, data, input } = args;
    let (_, train, test, _) = load_dataset(DatasetArg::FashionMnist, data.as_deref(), input)?;
    let seed = seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
    let mut model = prifft::fl::model::SimpleCnn::new(train.classes, &mut rng);
    let cfg = prifft::fl::model::SgdConfig::default();
    let mut ce = prifft::fl::model::LocalLoss::CrossEntropy;
    let all: Vec<usize> = (0..train.len()).collect();
    println!(
        "centralised simple CNN on Fashion-MNIST ({input:?} input), SGD lr {} momentum {} wd {} batch {}, seed {seed}",
        cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch
    );
    for epoch in 1..=epochs {
        let t = std::time::Instant::now();
        let loss = model.train_epoch(&train, &all, &cfg, &mut ce, &mut rng);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "epoch {epoch:>3}: train loss {loss:.4}, test accuracy {:.2} %, {secs:.1} s",
            100.0 * model.accuracy(&test)
        );
    }
    Ok(())
}
