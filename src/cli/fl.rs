//! `prifft fl` (federated training, every algorithm on the same partitions) and `prifft
//! fl-report` (its table and plot again from saved CSVs).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use prifft::fl::data::{Dataset, PixelStats};
use prifft::{Error, Result};

/// A federated algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AlgoArg {
    /// FedAvg: size-weighted averaging of the local models.
    Fedavg,
    /// FedProx: FedAvg with a proximal term μ/2·‖w − w_global‖² (--mu).
    Fedprox,
    /// MOON: model-contrastive loss against the global and the previous local model.
    Moon,
    /// FedProc: prototypical contrastive loss against the global class prototypes.
    Fedproc,
}

/// A data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// Fashion-MNIST (60,000 / 10,000 images, Debian's dataset-fashion-mnist).
    FashionMnist,
    /// MNIST-5k (4,000 / 1,000 digits from scripts/fetch-assets.sh): a quick run.
    #[value(name = "mnist-5k")]
    Mnist5k,
}

/// What the network sees of each pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputArg {
    /// (p − mean) / std with the training set's pixel mean and standard deviation
    /// (Fashion-MNIST: 0.2860, 0.3530), as MOON's and FedProc's reference code normalises
    /// every image set it loads.
    Standardize,
    /// Pixels in [0, 1] (`ToTensor` only, as NIID-Bench loads Fashion-MNIST): learns markedly
    /// slower in the first rounds.
    Raw,
}

/// Load a data set and prepare its pixels as `input` says; returns its name too.
///
/// # Errors
/// Missing or malformed data.
pub fn load_dataset(
    dataset: DatasetArg,
    data: Option<&Path>,
    input: InputArg,
) -> Result<(&'static str, Dataset, Dataset, Option<PixelStats>)> {
    let (name, (mut train, mut test)) = match dataset {
        DatasetArg::FashionMnist => ("Fashion-MNIST", prifft::fl::data::fashion_mnist(data)?),
        DatasetArg::Mnist5k => ("MNIST-5k", prifft::fl::data::mnist_5k(data)?),
    };
    let stats = match input {
        InputArg::Standardize => Some(prifft::fl::data::standardize(&mut train, &mut test)),
        InputArg::Raw => None,
    };
    Ok((name, train, test, stats))
}

/// The clients' index sets of `prifft fl`'s seed `seed`
/// ([`prifft::fl::partition::seeded`] with [`Scheme::dirichlet`](prifft::fl::partition::Scheme::dirichlet)).
///
/// # Errors
/// A split the Dirichlet draws cannot make.
pub fn seed_partition(
    train: &Dataset,
    clients: usize,
    beta: f64,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    use prifft::fl::partition::{Scheme, seeded};
    seeded(&train.labels, train.classes, clients, Scheme::dirichlet(beta), seed)
}

/// Arguments of `prifft fl`.
#[derive(Args, Debug)]
pub struct FlArgs {
    /// Comma-separated algorithms.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fedavg,fedprox,moon,fedproc")]
    algo: Vec<AlgoArg>,
    /// Dirichlet concentration β (smaller = more skewed).
    #[arg(long, default_value_t = 0.5)]
    beta: f64,
    /// Clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Communication rounds.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Local epochs per round.
    #[arg(long, default_value_t = 1)]
    local_epochs: usize,
    /// Fraction of clients per round.
    #[arg(long, default_value_t = 1.0)]
    fraction: f64,
    /// Local SGD learning rate (momentum 0.9, weight decay 1e-5 as docs/fedproc.md).
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Local batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// FedProx μ.
    #[arg(long, default_value_t = 0.01)]
    mu: f32,
    /// MOON's weight μ of the model-contrastive loss.
    #[arg(long, default_value_t = 1.0)]
    moon_mu: f32,
    /// MOON's temperature τ.
    #[arg(long, default_value_t = 0.5)]
    moon_tau: f32,
    /// FedProc's prototype-loss temperature τ; several values run FedProc once per value
    /// (1 = cosine logits, the paper's choice).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    fedproc_tau: Vec<f32>,
    /// FedProc's α horizon H: α_t = 1 − t/H (default: the number of rounds, as the paper).
    #[arg(long)]
    fedproc_horizon: Option<usize>,
    /// Number of seeds (seeds 1..=K; each seed fixes the partition and the initialisation).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Aggregate with pairwise masks so the server sees only the sums of the updates (and
    /// of FedProc's per-class sums and counts).
    #[arg(long)]
    secure_agg: bool,
    /// CSV output path.
    #[arg(long, default_value = "fl_results.csv")]
    out: PathBuf,
    /// PNG plot path (default: the CSV path with .png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The data set.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    dataset: DatasetArg,
    /// Directory of the Fashion-MNIST IDX files, or the MNIST-5k file.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input pixels: standardised by the training set's mean and std, or raw in [0, 1].
    #[arg(long, value_enum, default_value = "standardize")]
    input: InputArg,
}

/// Arguments of `prifft fl-report`.
#[derive(Args, Debug)]
pub struct FlReportArgs {
    /// CSV files written by `prifft fl` (algo,beta,seed,round,test_accuracy).
    #[arg(long, required = true)]
    csv: Vec<PathBuf>,
    /// Also draw accuracy against round into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Title of the plot.
    #[arg(long, default_value = "test accuracy per round")]
    title: String,
}

/// Train every algorithm and write CSV, plot and table.
///
/// # Errors
/// Bad options, missing data, unwritable outputs.
pub fn run(args: FlArgs) -> Result<()> {
    let FlArgs {
        algo,
        beta,
        clients,
        rounds,
        local_epochs,
        fraction,
        lr,
        batch,
        mu,
        moon_mu,
        moon_tau,
        fedproc_tau,
        fedproc_horizon,
        seeds,
        secure_agg,
        out,
        plot,
        dataset,
        data,
        input,
    } = args;
    use prifft::fl::rounds::Algo;
    let mut algos = Vec::new();
    for a in &algo {
        match a {
            AlgoArg::Fedavg => algos.push(Algo::FedAvg),
            AlgoArg::Fedprox => algos.push(Algo::FedProx { mu }),
            AlgoArg::Moon => algos.push(Algo::Moon { mu: moon_mu, tau: moon_tau }),
            AlgoArg::Fedproc => algos.extend(
                fedproc_tau.iter().map(|&tau| Algo::FedProc { tau, horizon: fedproc_horizon }),
            ),
        }
    }
    if let Some(&tau) = fedproc_tau.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
        return Err(Error::Data(format!("--fedproc-tau {tau}: must be positive")));
    }
    let plot = plot.unwrap_or_else(|| out.with_extension("png"));
    let cfg = prifft::fl::rounds::FlConfig {
        rounds,
        local_epochs,
        fraction,
        sgd: prifft::fl::model::SgdConfig { lr, batch, ..Default::default() },
        seed: 0,
        secure_agg,
    };
    let (name, train, test, _) = load_dataset(dataset, data.as_deref(), input)?;
    fl(&algos, (name, &train, &test), beta, clients, cfg, seeds, (&out, &plot))
}

/// `prifft fl-report`.
///
/// # Errors
/// Unreadable or malformed CSVs, an unwritable plot.
pub fn report(args: FlReportArgs) -> Result<()> {
    fl_report(&args.csv, args.plot.as_deref(), &args.title)
}

fn fl(
    algos: &[prifft::fl::rounds::Algo],
    (name, train, test): (&str, &Dataset, &Dataset),
    beta: f64,
    clients: usize,
    cfg: prifft::fl::rounds::FlConfig,
    seeds: u64,
    (out, plot): (&Path, &Path),
) -> Result<()> {
    use prifft::fl::plot::{self as plots, Series};
    use prifft::fl::rounds;
    if !(cfg.fraction > 0.0 && cfg.fraction <= 1.0)
        || clients == 0
        || cfg.rounds == 0
        || cfg.sgd.batch == 0
        || !(cfg.sgd.lr.is_finite() && cfg.sgd.lr > 0.0)
    {
        return Err(Error::Data(
            "--fraction must be in (0, 1], --lr positive, --clients, --rounds and --batch at least 1"
                .into(),
        ));
    }
    let mut csv = String::from("algo,beta,seed,round,test_accuracy\n");
    let mut series: Vec<Series> =
        algos.iter().map(|a| Series { label: a.label(), runs: vec![] }).collect();
    for seed in 1..=seeds {
        let parts = seed_partition(train, clients, beta, seed)?;
        for (algo, s) in algos.iter().zip(series.iter_mut()) {
            let cfg = rounds::FlConfig { seed, ..cfg };
            let bar = indicatif::ProgressBar::new(cfg.rounds as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>24} [{bar:30}] round {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{} seed {seed}", algo.label()));
            let acc = rounds::run(*algo, train, test, &parts, &cfg, |round, acc| {
                bar.set_position(round as u64);
                bar.set_message(format!("test accuracy {:.2} %", 100.0 * acc));
            })?;
            bar.finish();
            for (r, a) in acc.iter().enumerate() {
                csv += &format!("{},{beta},{seed},{},{a:.4}\n", algo.label(), r + 1);
            }
            s.runs.push(acc);
        }
        // Keep what is done so far: a long run stopped early still leaves its results.
        std::fs::write(out, &csv)
            .map_err(|source| Error::Io { path: out.to_path_buf(), source })?;
    }
    let title = format!(
        "{name}, {clients} clients, Dirichlet β = {beta}, {} local epoch(s), {seeds} seed(s)",
        cfg.local_epochs
    );
    plots::accuracy_vs_round(plot, &title, &series)?;
    println!(
        "{name}, {clients} clients, Dirichlet β = {beta}, {} rounds × {} local epoch(s), {seeds} seed(s); per-round accuracies in {}, plot in {}",
        cfg.rounds,
        cfg.local_epochs,
        out.display(),
        plot.display()
    );
    print_fl_table(&series);
    Ok(())
}

/// The final table of `prifft fl` and `prifft fl-report`: final accuracy and last-5-round mean,
/// mean ± std over seeds; with a FedAvg series, each other series' difference from it paired
/// by seed (the n-th run of each series is the same seed: same partition and initialisation).
fn print_fl_table(series: &[prifft::fl::plot::Series]) {
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
    };
    let finals = |s: &prifft::fl::plot::Series| -> Vec<f64> {
        s.runs.iter().map(|r| *r.last().unwrap_or(&0.0)).collect()
    };
    let last5 = |s: &prifft::fl::plot::Series| -> Vec<f64> {
        s.runs
            .iter()
            .map(|r| {
                let tail = &r[r.len().saturating_sub(5)..];
                tail.iter().sum::<f64>() / tail.len().max(1) as f64
            })
            .collect()
    };
    println!("{:<22}{:>18}{:>24}", "algorithm", "final accuracy %", "mean of last 5 rounds %");
    for s in series {
        println!("{:<22}{:>18}{:>24}", s.label, stats(&finals(s)), stats(&last5(s)));
    }
    let Some(base) = series.iter().find(|s| s.label == "fedavg") else { return };
    println!("\ndifference from fedavg in points, per seed (mean):");
    let paired = |a: Vec<f64>, b: Vec<f64>| {
        let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 100.0 * (x - y)).collect();
        let mean = d.iter().sum::<f64>() / d.len().max(1) as f64;
        let each: Vec<String> = d.iter().map(|x| format!("{x:+.1}")).collect();
        format!("{} ({mean:+.2})", each.join(", "))
    };
    for s in series.iter().filter(|s| s.label != "fedavg") {
        println!(
            "{:<22} final {}   last 5 {}",
            s.label,
            paired(finals(s), finals(base)),
            paired(last5(s), last5(base))
        );
    }
}

/// `prifft fl-report`: the table and plot of `prifft fl` again, from its CSV files.
fn fl_report(csvs: &[PathBuf], plot: Option<&Path>, title: &str) -> Result<()> {
    use prifft::fl::plot::Series;
    let mut series: Vec<Series> = Vec::new();
    let mut seeds: Vec<Vec<String>> = Vec::new();
    for path in csvs {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let bad =
                |what: &str| Error::Data(format!("{}: line {}: {what}", path.display(), n + 1));
            let fields: Vec<&str> = line.split(',').collect();
            let [algo, _beta, seed, round, acc] = fields[..] else {
                return Err(bad("expected algo,beta,seed,round,test_accuracy"));
            };
            let acc: f64 = acc.trim().parse().map_err(|_| bad("accuracy is not a number"))?;
            let round: usize = round.trim().parse().map_err(|_| bad("round is not a number"))?;
            let i = match series.iter().position(|s| s.label == algo) {
                Some(i) => i,
                None => {
                    series.push(Series { label: algo.to_string(), runs: vec![] });
                    seeds.push(vec![]);
                    series.len() - 1
                }
            };
            let j = match seeds[i].iter().position(|s| s == seed) {
                Some(j) => j,
                None => {
                    seeds[i].push(seed.to_string());
                    series[i].runs.push(vec![]);
                    seeds[i].len() - 1
                }
            };
            let run = &mut series[i].runs[j];
            if round != run.len() + 1 {
                return Err(bad("rounds of one run must be consecutive from 1"));
            }
            run.push(acc);
        }
    }
    if series.is_empty() {
        return Err(Error::Data("no runs in the CSV file(s)".into()));
    }
    if let Some(plot) = plot {
        prifft::fl::plot::accuracy_vs_round(plot, title, &series)?;
        println!("plot: {}", plot.display());
    }
    print_fl_table(&series);
    Ok(())
}
