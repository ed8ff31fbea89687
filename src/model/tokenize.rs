//! Sentences to token ids with Hugging Face's `tokenizers` (WordPiece from `tokenizer.json`),
//! with prifft's own fixed length: `[CLS] … [SEP]`, truncated to L tokens (the last kept one is
//! `[SEP]`), padded with `[PAD]` = 0, and an attention mask of 1 on real tokens.
//!
//! `tokenizer.json` of all-MiniLM-L6-v2 switches on padding and truncation to 128; both are
//! switched off here so that the length is the caller's choice.

use std::path::Path;

use crate::error::{Error, Result};

/// A batch of `rows` token sequences of one length, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, `rows × seq_len`.
    pub ids: Vec<u32>,
    /// 1 on tokens, 0 on padding, `rows × seq_len`.
    pub mask: Vec<u32>,
    /// Sequences in the batch.
    pub rows: usize,
    /// Tokens per sequence (L).
    pub seq_len: usize,
}

impl TokenBatch {
    /// Rows `range` of the batch.
    pub fn rows(&self, range: std::ops::Range<usize>) -> TokenBatch {
        let l = self.seq_len;
        TokenBatch {
            ids: self.ids[range.start * l..range.end * l].to_vec(),
            mask: self.mask[range.start * l..range.end * l].to_vec(),
            rows: range.len(),
            seq_len: l,
        }
    }

    /// The rows `which`, in that order.
    pub fn select(&self, which: &[usize]) -> TokenBatch {
        let l = self.seq_len;
        let mut out =
            TokenBatch { ids: Vec::new(), mask: Vec::new(), rows: which.len(), seq_len: l };
        for &r in which {
            out.ids.extend_from_slice(&self.ids[r * l..(r + 1) * l]);
            out.mask.extend_from_slice(&self.mask[r * l..(r + 1) * l]);
        }
        out
    }
}

/// The WordPiece tokenizer of a BERT model.
pub struct SentenceTokenizer {
    inner: tokenizers::Tokenizer,
    sep: u32,
    pad: u32,
}

impl std::fmt::Debug for SentenceTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceTokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .finish_non_exhaustive()
    }
}

impl SentenceTokenizer {
    /// Read `tokenizer.json`.
    ///
    /// # Errors
    /// [`Error::Data`] when the file is missing or unreadable, or has no `[CLS]`, `[SEP]` or
    /// `[PAD]` token.
    pub fn from_file(path: &Path) -> Result<SentenceTokenizer> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            Error::Data(format!("{}: not a readable tokenizer.json ({e})", path.display()))
        })?;
        inner.with_truncation(None).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| Error::Data(format!("{}: no {t} token", path.display())))
        };
        let (_cls, sep, pad) = (id("[CLS]")?, id("[SEP]")?, id("[PAD]")?);
        Ok(SentenceTokenizer { inner, sep, pad })
    }

    /// The ids of `text` with `[CLS]` and `[SEP]`, untruncated.
    ///
    /// # Errors
    /// [`Error::Data`] when the tokenizer fails on the text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc =
            self.inner.encode(text, true).map_err(|e| Error::Data(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `texts` at a fixed length `seq_len` (truncated with `[SEP]` kept last, padded with
    /// `[PAD]`), or, with `None`, at the longest text's length.
    ///
    /// # Errors
    /// [`Error::Usage`] for `seq_len` < 2 (no room for `[CLS]` and `[SEP]`); as
    /// [`SentenceTokenizer::encode`].
    pub fn encode_batch(&self, texts: &[&str], seq_len: Option<usize>) -> Result<TokenBatch> {
        if let Some(l) = seq_len
            && l < 2
        {
            return Err(Error::Usage(format!(
                "sequence length {l} is too short: [CLS] and [SEP] need 2 tokens"
            )));
        }
        let encoded: Vec<Vec<u32>> = texts.iter().map(|t| self.encode(t)).collect::<Result<_>>()?;
        let l = seq_len.unwrap_or_else(|| encoded.iter().map(Vec::len).max().unwrap_or(2));
        let mut batch =
            TokenBatch { ids: Vec::new(), mask: Vec::new(), rows: texts.len(), seq_len: l };
        for mut ids in encoded {
            if ids.len() > l {
                ids.truncate(l - 1);
                ids.push(self.sep);
            }
            let real = ids.len();
            ids.resize(l, self.pad);
            batch.ids.extend_from_slice(&ids);
            batch.mask.extend((0..l).map(|i| u32::from(i < real)));
        }
        Ok(batch)
    }
}
