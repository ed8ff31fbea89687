//! Real labelled sentences: Hutto and Gilbert's four sentence sets (ICWSM 2014, shipped in the
//! vaderSentiment 3.3.2 source package and fetched by `scripts/fetch-assets.sh`), each line
//! `id \t mean rating \t text` with the mean of human ratings in [−4, 4].
//!
//! The label is the rating's sign (1 = positive); sentences rated exactly 0 are dropped. The
//! movie set holds 10,605 Rotten Tomatoes sentences (the source of SST), of which 37 are rated 0,
//! leaving 10,568 (5,242 positive). The other three sets — Amazon reviews, New York Times
//! editorials and tweets — load the same way and serve as naturally non-IID clients.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::prg::ChaCha20Rng;

/// Where `scripts/fetch-assets.sh` puts the sentence sets, relative to the repository.
pub const SENTIMENT_DIR: &str = "assets/sentiment";

/// One of the four sentence sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corpus {
    /// Rotten Tomatoes movie-review sentences (10,605).
    Movies,
    /// Amazon product-review sentences (3,708).
    Amazon,
    /// New York Times editorial sentences (5,190).
    Nyt,
    /// Tweets (4,200).
    Tweets,
}

impl Corpus {
    /// All four, movies first.
    pub const ALL: [Corpus; 4] = [Corpus::Movies, Corpus::Amazon, Corpus::Nyt, Corpus::Tweets];

    /// The file name inside the data folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Corpus::Movies => "movieReviewSnippets_GroundTruth.txt",
            Corpus::Amazon => "amazonReviewSnippets_GroundTruth.txt",
            Corpus::Nyt => "nytEditorialSnippets_GroundTruth.txt",
            Corpus::Tweets => "tweets_GroundTruth.txt",
        }
    }
}

/// A sentence and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Sentence {
    /// The text.
    pub text: String,
    /// 1 when the mean rating is positive, 0 when negative.
    pub label: u8,
    /// The mean human rating in [−4, 4].
    pub rating: f32,
}

/// The data folder: `dir`, or [`SENTIMENT_DIR`] under the current directory, then under this
/// crate's source directory.
pub fn data_dir(dir: Option<&Path>) -> PathBuf {
    crate::assets::resolve(dir, SENTIMENT_DIR)
}

/// Parse one sentence file (`id \t rating \t text` per line, CRLF or LF), dropping rating 0.
///
/// # Errors
/// [`Error::Data`] naming the line for a wrong field count or a rating that is not a number
/// in [−4, 4]; an empty file.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Sentence>> {
    let err = |what: String| Error::Data(format!("{}: {what}", path.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        if fields.len() != 3 {
            return Err(err(format!(
                "line {}: expected id, rating and text separated by tabs",
                n + 1
            )));
        }
        let rating: f32 =
            fields[1].trim().parse().ok().filter(|r: &f32| (-4.0..=4.0).contains(r)).ok_or_else(
                || err(format!("line {}: rating {:?} is not in [-4, 4]", n + 1, fields[1])),
            )?;
        if rating == 0.0 {
            continue;
        }
        out.push(Sentence {
            text: fields[2].trim().to_string(),
            label: u8::from(rating > 0.0),
            rating,
        });
    }
    if out.is_empty() {
        return Err(err("no rated sentences".into()));
    }
    Ok(out)
}

/// Load `corpus` from [`data_dir`]`(dir)`.
///
/// # Errors
/// [`Error::Data`] naming `scripts/fetch-assets.sh` when the file is missing; as [`parse`].
pub fn load(corpus: Corpus, dir: Option<&Path>) -> Result<Vec<Sentence>> {
    let path = data_dir(dir).join(corpus.file_name());
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::Data(format!(
            "{}: {e}; run scripts/fetch-assets.sh (it downloads the vaderSentiment 3.3.2 source package with pip)",
            path.display()
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Data(format!("{}: not UTF-8 text", path.display())))?;
    parse(&text, &path)
}

/// One seeded permutation of `sentences`: its first `test` form the test set, the next `train`
/// the training set.
///
/// # Errors
/// [`Error::Usage`] when `test + train` exceeds the number of sentences.
pub fn split(
    sentences: &[Sentence],
    seed: u64,
    test: usize,
    train: usize,
) -> Result<(Vec<Sentence>, Vec<Sentence>)> {
    if test + train > sentences.len() {
        return Err(Error::Usage(format!(
            "{test} test + {train} training sentences asked, {} available",
            sentences.len()
        )));
    }
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    let pick = |r: &[usize]| r.iter().map(|&i| sentences[i].clone()).collect::<Vec<_>>();
    Ok((pick(&order[test..test + train]), pick(&order[..test])))
}
