//! Key batches: the struct-of-arrays layout shared by the CPU evaluator and the GPU kernels, and
//! the versioned wire format.
//!
//! # Layout of one party's batch of `len` keys with input width `n`
//!
//! The per-level arrays are **tiled**: keys are split into tiles of [`TILE`] consecutive keys
//! (the last tile may be narrower, width `w = min(TILE, len − tile_start)`), and within a tile
//! the entries are level-major. Entry (level `i`, key `k`) lives at
//! [`tiled`]`(levels, len, i, k) = tile_start·levels + i·w + (k − tile_start)`. So a tile of keys
//! reads one contiguous run per level — coalesced loads for a GPU warp — and its whole key
//! material is one contiguous block that the CPU streams through while it evaluates the tile's
//! keys interleaved, level by level.
//!
//! | array | type | length | content |
//! |---|---|---|---|
//! | `roots` | u128 | len | this party's root seed (bits 0–1 zero) |
//! | `seed_cw` | u128 | (n−1)·len, tiled with levels = n − 1 | seed correction (bits 2–127) with the control-bit corrections in bit 0 (left child) and bit 1 (right child) |
//! | `value_cw` | u64 | (n−1)·w·len, tiled with levels = (n−1)·w | DCF only: word q of level i's value correction at "level" i·w + q (DPF: empty) |
//! | `last_cw` | u64 | 2·w·len, tiled with levels = 2w | word q of the last level's output correction for last input bit σ at "level" σ·w + q |
//!
//! `w` is the number of 64-bit output words (the payload β is a vector of w ring elements;
//! DPF batches and scalar DCFs have w = 1).
//!
//! Everything but `roots` is identical in both parties' batches.
//!
//! One party's key size: DPF `16 + 16(n−1) + 16` bytes (n = 64: 1,040 B);
//! DCF `16 + (16 + 8w)(n−1) + 16w` bytes (w = 1, n = 64: 1,544 B); comparison (scheme 3,
//! [`cmp`](super::cmp)) `16 + 16·max(n−7, 0) + 16` bytes (n = 64: 944 B), its levels being
//! n − 7 and `last_cw` holding the 128-bit leaf correction as two words (low, high).
//!
//! # Wire format (version 1, little-endian)
//!
//! ```text
//! magic "PRIFFTFK" (8) | version u16 | scheme u8 (1 = DCF, 2 = DPF, 3 = comparison) | party u8 | n u8 |
//! output words w u8 (64-bit words; 1..=16, DPF 1) | reserved u16 = 0 | len u64 | body bytes u64 |
//! body: roots | seed_cw | value_cw | last_cw
//! ```
//! Every field is checked on load; malformed, truncated or mismatched data is a [`KeyError`].

use crate::fss::KeyError;
use crate::party::PartyId;

const MAGIC: &[u8; 8] = b"PRIFFTFK";
/// Keys per tile of the layout (a GPU warp; a CPU evaluation group).
pub const TILE: usize = 32;

/// Index of (level `level`, key `key`) in a tiled array of `levels` entries per key over a batch
/// of `len` keys (see the module docs).
#[inline(always)]
pub fn tiled(levels: usize, len: usize, level: usize, key: usize) -> usize {
    let tile_start = key / TILE * TILE;
    let width = TILE.min(len - tile_start);
    tile_start * levels + level * width + (key - tile_start)
}

/// Whether keys `first..first + TILE` are a full tile of `keys` with `xs` one input per key and
/// `out` `words` outputs per key: the vector tiles' precondition (checked in debug builds).
#[cfg(target_arch = "x86_64")]
pub(crate) fn is_full_tile(
    keys: &KeyBatch,
    first: usize,
    xs: &[u64],
    out: &[u64],
    words: usize,
) -> bool {
    first.is_multiple_of(TILE)
        && first + TILE <= keys.len
        && xs.len() == TILE
        && out.len() == words * TILE
        && (keys.words as usize).max(1) == words
}

const VERSION: u16 = 1;
const HEADER_BYTES: usize = 32;
/// Most 64-bit output words a DCF payload may have.
pub const MAX_WORDS: u32 = 16;

/// Which function family a key batch shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Scheme {
    /// Distributed comparison function: `β·[x < α]`.
    Dcf = 1,
    /// Distributed point function: `β·[x = α]`.
    Dpf = 2,
    /// Comparison `[x < α]` with a one-bit, XOR-shared output: one AES block per level and the
    /// last 7 levels folded into one 128-bit leaf ([`cmp`](crate::fss::cmp)).
    Cmp = 3,
}

/// Levels of the tree that carry a seed correction: n − 1 for DCFs and DPFs, n − 7 (at least 0)
/// for comparison keys, whose last 7 input bits index a 128-bit leaf.
pub fn levels(scheme: Scheme, n: u32) -> usize {
    match scheme {
        Scheme::Dcf | Scheme::Dpf => n.saturating_sub(1) as usize,
        Scheme::Cmp => n.saturating_sub(super::cmp::LEAF_BITS) as usize,
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::Dcf => "DCF",
            Scheme::Dpf => "DPF",
            Scheme::Cmp => "CMP",
        })
    }
}

/// One party's keys for a batch of functions of one scheme and input width.
///
/// Secret: it prints only its public parameters (`KeyBatch { scheme: DCF, party: P0, n: 64,
/// words: 1, len: 4096, .. }`), has no `Clone`, and zeroes its arrays when dropped.
#[derive(PartialEq, Eq)]
pub struct KeyBatch {
    pub(crate) scheme: Scheme,
    pub(crate) party: PartyId,
    pub(crate) n: u32,
    pub(crate) len: usize,
    pub(crate) words: u32,
    pub(crate) roots: Vec<u128>,
    pub(crate) seed_cw: Vec<u128>,
    pub(crate) value_cw: Vec<u64>,
    pub(crate) last_cw: Vec<u64>,
}

impl std::fmt::Debug for KeyBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBatch")
            .field("scheme", &self.scheme)
            .field("party", &self.party)
            .field("n", &self.n)
            .field("words", &self.words)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyBatch {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.roots.zeroize();
        self.seed_cw.zeroize();
        self.value_cw.zeroize();
        self.last_cw.zeroize();
    }
}

/// Check an input width.
pub(crate) fn check_width(n: u32) -> Result<(), KeyError> {
    if (1..=64).contains(&n) { Ok(()) } else { Err(KeyError::Width { n }) }
}

/// Check a key-generation call: width, one payload of `words` per α, every α in the domain, and
/// output batches in the order [P0, P1]; then size both batches for it.
pub(crate) fn prepare_keygen(
    scheme: Scheme,
    n: u32,
    words: u32,
    alphas: &[u64],
    betas: &[u64],
    keys: &mut [KeyBatch; 2],
) -> Result<(), KeyError> {
    check_width(n)?;
    let w = words as usize;
    if betas.len() != alphas.len() * w {
        return Err(KeyError::BatchLength {
            what: "betas",
            expected: alphas.len() * w,
            found: betas.len(),
        });
    }
    check_domain("alpha", alphas, n)?;
    check_party_order(keys)?;
    for k in keys.iter_mut() {
        k.reset(scheme, n, alphas.len(), words);
    }
    Ok(())
}

/// Check that `keys` holds P0's batch then P1's.
pub(crate) fn check_party_order(keys: &[KeyBatch; 2]) -> Result<(), KeyError> {
    if keys[0].party != PartyId::P0 || keys[1].party != PartyId::P1 {
        return Err(KeyError::Mismatch {
            what: "party order",
            expected: "[P0, P1]".into(),
            found: format!("[{}, {}]", keys[0].party, keys[1].party),
        });
    }
    Ok(())
}

/// Check that every value fits in n bits.
pub(crate) fn check_domain(what: &'static str, values: &[u64], n: u32) -> Result<(), KeyError> {
    if n < 64
        && let Some(index) = values.iter().position(|&x| x >> n != 0)
    {
        return Err(KeyError::Domain { what, index, n });
    }
    Ok(())
}

impl KeyBatch {
    /// An all-zero batch with the right array sizes.
    pub(crate) fn zeroed(scheme: Scheme, party: PartyId, n: u32, len: usize, words: u32) -> Self {
        let mut batch = Self::empty(party);
        batch.reset(scheme, n, len, words);
        batch
    }

    /// An empty batch for `party`, to be filled by a `keygen_into`.
    pub fn empty(party: PartyId) -> Self {
        Self {
            scheme: Scheme::Dcf,
            party,
            n: 1,
            len: 0,
            words: 1,
            roots: Vec::new(),
            seed_cw: Vec::new(),
            value_cw: Vec::new(),
            last_cw: Vec::new(),
        }
    }

    /// Size the arrays for a batch, reusing their memory (the contents are overwritten by key
    /// generation).
    pub(crate) fn reset(&mut self, scheme: Scheme, n: u32, len: usize, words: u32) {
        let levels = levels(scheme, n);
        let w = words as usize;
        self.scheme = scheme;
        self.n = n;
        self.len = len;
        self.words = words;
        self.roots.resize(len, 0);
        self.seed_cw.resize(levels * len, 0);
        self.value_cw.resize(if scheme == Scheme::Dcf { levels * w * len } else { 0 }, 0);
        self.last_cw.resize(2 * w * len, 0);
    }

    /// Output words per evaluation (the payload width).
    pub fn words(&self) -> u32 {
        self.words
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The party these keys belong to.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// Input width in bits.
    pub fn input_bits(&self) -> u32 {
        self.n
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of one party's key with a one-word payload (without the batch header).
    pub fn key_bytes(scheme: Scheme, n: u32) -> usize {
        Self::key_bytes_words(scheme, n, 1)
    }

    /// Bytes of one party's key with a `words`-word payload.
    pub fn key_bytes_words(scheme: Scheme, n: u32, words: u32) -> usize {
        let levels = levels(scheme, n);
        let w = words as usize;
        let per_level = match scheme {
            Scheme::Dcf => 16 + 8 * w,
            Scheme::Dpf | Scheme::Cmp => 16,
        };
        16 + per_level * levels + 16 * w
    }

    /// Levels with a seed correction ([`levels`]).
    pub fn levels(&self) -> usize {
        levels(self.scheme, self.n)
    }

    /// The roots, seed corrections, value corrections and last-level corrections.
    pub fn arrays(&self) -> (&[u128], &[u128], &[u64], &[u64]) {
        (&self.roots, &self.seed_cw, &self.value_cw, &self.last_cw)
    }

    /// Check that the batch is what the caller expects.
    ///
    /// # Errors
    /// [`KeyError::Mismatch`] naming the first differing property.
    pub fn expect(&self, scheme: Scheme, party: PartyId, n: u32) -> Result<(), KeyError> {
        let mismatch =
            |what, e: String, f: String| Err(KeyError::Mismatch { what, expected: e, found: f });
        if self.scheme != scheme {
            return mismatch("scheme", scheme.to_string(), self.scheme.to_string());
        }
        if self.party != party {
            return mismatch("party", party.to_string(), self.party.to_string());
        }
        if self.n != n {
            return mismatch("input width", n.to_string(), self.n.to_string());
        }
        Ok(())
    }

    /// Bytes of [`to_bytes`](Self::to_bytes)'s output, without serialising.
    pub fn wire_len(&self) -> usize {
        HEADER_BYTES + Self::key_bytes_words(self.scheme, self.n, self.words) * self.len
    }

    /// Serialise (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.append_to(&mut out);
        out
    }

    /// Append [`to_bytes`](Self::to_bytes)'s output to `out` (no intermediate copy).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        let body = Self::key_bytes_words(self.scheme, self.n, self.words) * self.len;
        out.reserve(HEADER_BYTES + body);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[
            self.scheme as u8,
            self.party.index() as u8,
            self.n as u8,
            self.words as u8,
            0,
            0,
        ]);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&(body as u64).to_le_bytes());
        for x in self.roots.iter().chain(&self.seed_cw) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in self.value_cw.iter().chain(&self.last_cw) {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Parse and validate.
    ///
    /// # Errors
    /// [`KeyError::BadMagic`], [`KeyError::Version`], [`KeyError::Header`] (scheme, party, width,
    /// output bits, reserved bytes, root seeds), [`KeyError::Truncated`], [`KeyError::Length`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < HEADER_BYTES {
            return Err(KeyError::Truncated {
                needed: HEADER_BYTES as u64,
                found: bytes.len() as u64,
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(KeyError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(KeyError::Version { found: version, supported: VERSION });
        }
        let header = |field, value: u8| KeyError::Header { field, value: value as u64 };
        let scheme = match bytes[10] {
            1 => Scheme::Dcf,
            2 => Scheme::Dpf,
            3 => Scheme::Cmp,
            v => return Err(header("scheme", v)),
        };
        let party = PartyId::from_index(bytes[11] as usize).ok_or(header("party", bytes[11]))?;
        let n = bytes[12] as u32;
        check_width(n).map_err(|_| header("input width", bytes[12]))?;
        let words = bytes[13] as u32;
        let words_ok = match scheme {
            Scheme::Dcf => (1..=MAX_WORDS).contains(&words),
            Scheme::Dpf | Scheme::Cmp => words == 1,
        };
        if !words_ok {
            return Err(header("output words", bytes[13]));
        }
        if bytes[14] != 0 || bytes[15] != 0 {
            return Err(header("reserved", bytes[14] | bytes[15]));
        }
        let len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let body = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
        let expected = (Self::key_bytes_words(scheme, n, words) as u64).checked_mul(len);
        let expected = expected.ok_or(KeyError::Header { field: "batch length", value: len })?;
        if body != expected {
            return Err(KeyError::Length { expected, found: body });
        }
        let present = (bytes.len() - HEADER_BYTES) as u64;
        if present < expected {
            return Err(KeyError::Truncated {
                needed: HEADER_BYTES as u64 + expected,
                found: bytes.len() as u64,
            });
        }
        if present > expected {
            return Err(KeyError::Length { expected, found: present });
        }
        let len = usize::try_from(len)
            .map_err(|_| KeyError::Header { field: "batch length", value: len })?;
        let mut batch = Self::zeroed(scheme, party, n, len, words);
        let mut rest = &bytes[HEADER_BYTES..];
        let mut take = |count: usize| {
            let (head, tail) = rest.split_at(count);
            rest = tail;
            head
        };
        for (dst, src) in batch.roots.iter_mut().zip(take(16 * len).chunks_exact(16)) {
            *dst = u128::from_le_bytes(src.try_into().expect("16 bytes"));
        }
        let seeds = batch.seed_cw.len();
        for (dst, src) in batch.seed_cw.iter_mut().zip(take(16 * seeds).chunks_exact(16)) {
            *dst = u128::from_le_bytes(src.try_into().expect("16 bytes"));
        }
        let values = batch.value_cw.len();
        for (dst, src) in batch.value_cw.iter_mut().zip(take(8 * values).chunks_exact(8)) {
            *dst = u64::from_le_bytes(src.try_into().expect("8 bytes"));
        }
        let lasts = batch.last_cw.len();
        for (dst, src) in batch.last_cw.iter_mut().zip(take(8 * lasts).chunks_exact(8)) {
            *dst = u64::from_le_bytes(src.try_into().expect("8 bytes"));
        }
        if let Some(bad) = batch.roots.iter().find(|r| *r & 3 != 0) {
            return Err(KeyError::Header { field: "root seed low bits", value: (bad & 3) as u64 });
        }
        Ok(batch)
    }
}
