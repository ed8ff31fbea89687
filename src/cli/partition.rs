//! `prifft partition`: split Fashion-MNIST among clients and show each client's classes.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use prifft::Result;

/// How the training set is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// Uniformly at random.
    Iid,
    /// Dirichlet label skew (MOON's partition, --beta).
    Dirichlet,
    /// Sorted by label, cut into shards (--shards-per-client).
    Shards,
}

/// Arguments of `prifft partition`.
#[derive(Args, Debug)]
pub struct PartitionArgs {
    /// How to split.
    #[arg(long, value_enum, default_value = "dirichlet")]
    scheme: SchemeArg,
    /// Dirichlet concentration β (smaller = more skewed).
    #[arg(long, default_value_t = 0.5)]
    beta: f64,
    /// Number of clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Minimum samples per client (Dirichlet).
    #[arg(long, default_value_t = 10)]
    min_per_client: usize,
    /// Shards per client (shards).
    #[arg(long, default_value_t = 2)]
    shards_per_client: usize,
    /// Seed of the split (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Also draw the histogram as stacked bars into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Directory of the Fashion-MNIST IDX files.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Split and print (and draw) the class histogram.
///
/// # Errors
/// Missing data, a split that cannot be made, an unwritable plot.
pub fn run(args: PartitionArgs) -> Result<()> {
    let PartitionArgs {
        scheme,
        beta,
        clients,
        min_per_client,
        shards_per_client,
        seed,
        plot,
        data,
    } = args;
    use prifft::fl::partition::{self, Scheme};
    let scheme = match scheme {
        SchemeArg::Iid => Scheme::Iid,
        SchemeArg::Dirichlet => Scheme::Dirichlet { beta, min_per_client },
        SchemeArg::Shards => Scheme::Shards { per_client: shards_per_client },
    };
    let (train, _) = prifft::fl::data::fashion_mnist(data.as_deref())?;
    let seed = seed.unwrap_or_else(|| rand::Rng::random(&mut prifft::prg::os_rng()));
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed);
    let parts = partition::partition(&train.labels, train.classes, clients, scheme, &mut rng)?;
    let how = match scheme {
        Scheme::Iid => "IID".to_string(),
        Scheme::Dirichlet { beta, min_per_client } => {
            format!("Dirichlet β = {beta}, ≥ {min_per_client} per client")
        }
        Scheme::Shards { per_client } => format!("{per_client} shards per client"),
    };
    let title = format!("Fashion-MNIST training set, {clients} clients, {how}, seed {seed}");
    println!("{title}");
    let histogram = partition::class_histogram(&parts, &train.labels, train.classes);
    print!("{}", partition::render_histogram(&histogram));
    if let Some(path) = plot {
        let names = prifft::fl::data::FASHION_MNIST_CLASSES;
        prifft::fl::plot::class_histogram(&path, &title, &histogram, &names)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}
