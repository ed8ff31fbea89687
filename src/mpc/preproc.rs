//! The typed store of one party's correlated randomness, and its file format.
//!
//! The dealer produces items in pairs (one half per party) with a shared random 128-bit id.
//! A protocol asks the store for the next item of a kind and shape; the store answers with an
//! error — never with the wrong material — when the kind is exhausted, the shape differs or the
//! material belongs to the other party. Items are moved out when taken, and the store remembers
//! every id it has ever held, so loading the same material twice (a copied key file, a replayed
//! bundle) is refused: one-time material is used exactly once.
//!
//! # File format (version 1, little-endian)
//!
//! ```text
//! header:  magic "PRIFFTPP" (8) | version u16 | party u8 | reserved u8 = 0 | bundle id (16) | item count u64
//! item:    kind u8 | id (16) | rank u8 | dims u64 × rank | tensors (u64 × elements, row-major)
//!          ElemTriple: shape s, tensors a, b, c of shape s
//!          SquarePair: shape s, tensors a, c of shape s
//!          MatTriple:  dims [m, k, n], tensors a (m×k), b (k×n), c (m×n)
//!          AndTriple:  shape s, XOR shares of a, b, c = a AND b
//!          BitPair:    shape s, XOR share of r (lowest bit), additive share of r
//!          XorRandom:  shape s, XOR shares of random 16-bit values
//!          Mask:       shape s, the share of r;  MaskedValue: shape s, v̂ and the share of r
//!          MaskedProduct: dims [batch, m, k, n], the share of R_A·R_B ([batch, m, n])
//!          AffineProduct: dims [len, terms], the shares of r·D_t ([terms, len])
//!          FSS kinds (DCF/DPF key batches, gate keys): dims as their shape key, then the
//!          sections of gates::material (length-prefixed u64 vectors and key batches)
//! ```
//!
//! Files hold secret shares: they are written with owner-only permissions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;

use super::error::{MpcError as Error, PreprocError, Result};
use crate::ring::RingTensor;

use super::gates::material::{FssItem, FssMaterial, Sink};
use super::{PartyId, Share};

const MAGIC: &[u8; 8] = b"PRIFFTPP";
const VERSION: u16 = 1;
/// Highest tensor rank accepted from a file.
const MAX_RANK: usize = 8;

/// What an item of correlated randomness is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MaterialKind {
    /// Beaver triple for an elementwise product: (a, b, c = a⊙b).
    ElemTriple = 1,
    /// Beaver pair for an elementwise square: (a, c = a⊙a).
    SquarePair = 2,
    /// Beaver triple for a matrix product: (A, B, C = A·B).
    MatTriple = 3,
    /// A DCF key batch, shape key [len, n, words].
    DcfKeys = 4,
    /// A DPF key batch, shape key [len, n].
    DpfKeys = 5,
    /// Sign / DReLU / less-than gate keys, shape key [len, width].
    SignKeys = 6,
    /// ReLU gate keys, shape key [len, width].
    ReluKeys = 7,
    /// Interval-containment gate keys, shape key [len, width].
    IntervalKeys = 8,
    /// Spline gate keys, shape key [len, width, degree].
    SplineKeys = 9,
    /// Lookup-table gate keys, shape key [len, index bits].
    LutKeys = 10,
    /// Exact-shift gate keys, shape key [len, width, shift].
    ShiftKeys = 11,
    /// The share ⟨r⟩ of a mask r that puts a tensor of this shape in masked form x̂ = x + r
    /// ([`masked`](super::masked)).
    Mask = 12,
    /// ⟨R_A·R_B⟩ for a masked tensor product, shape key [batch, m, k, n]; bound to its two masks
    /// by its id ([`masked`](super::masked)).
    MaskedProduct = 13,
    /// A dealer-chosen secret v in masked form: the public v̂ = v + r (the same for both
    /// parties) and the party's share ⟨r⟩ ([`masked::gen_value`](super::masked::gen_value)).
    MaskedValue = 14,
    /// A one-bit comparison key batch ([`fss::cmp`](crate::fss::cmp)), shape key [len, n].
    CmpKeys = 15,
    /// DReLU (select 0) or ReLU (select 1) keys from a one-bit comparison
    /// ([`gates::cmp_relu`](super::gates::cmp_relu)), shape key [len, width, select].
    CmpReluKeys = 16,
    /// Exact-shift keys from one-bit comparisons
    /// ([`gates::cmp_shift`](super::gates::cmp_shift)), shape key [len, width, shift].
    CmpShiftKeys = 17,
    /// A binary (XOR-shared) AND triple (a, b, c = a AND b) on 64-bit words, shape key the
    /// tensor shape ([`baseline::binary`](super::baseline::binary)).
    AndTriple = 18,
    /// A random bit r shared twice: XOR-shared (in the word's lowest bit) and additively
    /// ([`baseline::binary`](super::baseline::binary)'s binary-to-arithmetic conversion).
    BitPair = 19,
    /// XOR shares of uniformly random 16-bit values (the CrypTen-style baseline's `rand`).
    XorRandom = 20,
    /// ⟨r·D_t⟩ for a product of a fresh tensor masked by r with a gate output in affine form,
    /// shape key [len, terms]; bound to the mask and the output by its id
    /// ([`affine`](super::affine)).
    AffineProduct = 21,
    /// Spline keys from one comparison key and opened bits
    /// ([`gates::cmp_spline`](super::gates::cmp_spline)), shape key [len, width, degree, pieces].
    CmpSplineKeys = 22,
}

impl MaterialKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::ElemTriple),
            2 => Some(Self::SquarePair),
            3 => Some(Self::MatTriple),
            4 => Some(Self::DcfKeys),
            5 => Some(Self::DpfKeys),
            6 => Some(Self::SignKeys),
            7 => Some(Self::ReluKeys),
            8 => Some(Self::IntervalKeys),
            9 => Some(Self::SplineKeys),
            10 => Some(Self::LutKeys),
            11 => Some(Self::ShiftKeys),
            12 => Some(Self::Mask),
            13 => Some(Self::MaskedProduct),
            14 => Some(Self::MaskedValue),
            15 => Some(Self::CmpKeys),
            16 => Some(Self::CmpReluKeys),
            17 => Some(Self::CmpShiftKeys),
            18 => Some(Self::AndTriple),
            19 => Some(Self::BitPair),
            20 => Some(Self::XorRandom),
            21 => Some(Self::AffineProduct),
            22 => Some(Self::CmpSplineKeys),
            _ => None,
        }
    }

    /// Whether items of this kind are FSS material (keys) rather than Beaver tensors.
    pub fn is_fss(self) -> bool {
        !matches!(
            self,
            Self::ElemTriple
                | Self::SquarePair
                | Self::MatTriple
                | Self::Mask
                | Self::MaskedProduct
                | Self::MaskedValue
                | Self::AndTriple
                | Self::BitPair
                | Self::XorRandom
                | Self::AffineProduct
        )
    }

    fn tensor_shapes(self, dims: &[usize]) -> Vec<Vec<usize>> {
        match self {
            Self::ElemTriple => vec![dims.to_vec(); 3],
            Self::SquarePair => vec![dims.to_vec(); 2],
            Self::MatTriple => {
                vec![vec![dims[0], dims[1]], vec![dims[1], dims[2]], vec![dims[0], dims[2]]]
            }
            Self::Mask => vec![dims.to_vec()],
            Self::MaskedValue => vec![dims.to_vec(); 2],
            Self::AndTriple => vec![dims.to_vec(); 3],
            Self::BitPair => vec![dims.to_vec(); 2],
            Self::XorRandom => vec![dims.to_vec()],
            Self::AffineProduct => vec![vec![dims[1], dims[0]]],
            Self::MaskedProduct => vec![vec![dims[0], dims[1], dims[3]]],
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for MaterialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ElemTriple => "elementwise Beaver triple",
            Self::SquarePair => "Beaver square pair",
            Self::MatTriple => "matrix Beaver triple",
            Self::DcfKeys => "DCF key batch [len, bits, words]",
            Self::DpfKeys => "DPF key batch [len, bits]",
            Self::SignKeys => "sign-gate keys [len, width]",
            Self::ReluKeys => "ReLU keys [len, width]",
            Self::IntervalKeys => "interval keys [len, width]",
            Self::SplineKeys => "spline keys [len, width, degree]",
            Self::LutKeys => "lookup-table keys [len, index bits]",
            Self::ShiftKeys => "shift keys [len, width, shift]",
            Self::Mask => "mask share",
            Self::MaskedProduct => "masked-product correlation [batch, m, k, n]",
            Self::MaskedValue => "dealer value in masked form",
            Self::CmpKeys => "comparison key batch [len, bits]",
            Self::CmpReluKeys => "comparison DReLU/ReLU keys [len, width, select]",
            Self::CmpShiftKeys => "comparison shift keys [len, width, shift]",
            Self::AndTriple => "binary AND triple",
            Self::BitPair => "random bit in binary and arithmetic form",
            Self::XorRandom => "binary shares of random 16-bit values",
            Self::AffineProduct => "affine-output product correlation [len, terms]",
            Self::CmpSplineKeys => "comparison spline keys [len, width, degree, pieces]",
        })
    }
}

/// A random label shared by the two halves of one dealer item (not secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaterialId(pub [u8; 16]);

impl fmt::Display for MaterialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One party's half of one dealer item.
#[derive(Debug)]
pub struct Material {
    pub(crate) id: MaterialId,
    pub(crate) kind: MaterialKind,
    /// The shape key: the tensor shape, [m, k, n] for a matrix triple, or the FSS kind's key
    /// ([`gates::material`](super::gates::material)).
    pub(crate) dims: Vec<usize>,
    pub(crate) payload: Payload,
}

/// What an item holds.
#[derive(Debug)]
pub(crate) enum Payload {
    /// Shares of Beaver tensors.
    Tensors(Vec<RingTensor>),
    /// FSS keys (with input-mask shares for gates), boxed: a gate's material is a few hundred
    /// bytes of headers beside its heap arrays.
    Fss(Box<FssMaterial>),
}

/// One party's store of correlated randomness.
#[derive(Debug)]
pub struct Preproc {
    party: PartyId,
    bundle: [u8; 16],
    queues: HashMap<MaterialKind, VecDeque<Material>>,
    seen: HashSet<MaterialId>,
}

impl Preproc {
    /// An empty store for `party`, labelled with the dealer run's bundle id.
    pub fn new(party: PartyId, bundle: [u8; 16]) -> Self {
        Self { party, bundle, queues: HashMap::new(), seen: HashSet::new() }
    }

    /// The party this material is for.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The dealer run this store came from; both parties' stores of one run carry the same id.
    pub fn bundle_id(&self) -> [u8; 16] {
        self.bundle
    }

    /// Items not yet used.
    pub fn remaining(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Items of one kind not yet used.
    pub fn remaining_of(&self, kind: MaterialKind) -> usize {
        self.queues.get(&kind).map_or(0, VecDeque::len)
    }

    /// Add one item.
    ///
    /// # Errors
    /// [`PreprocError::Reused`] when an item with this id was held before.
    pub(crate) fn push(&mut self, material: Material) -> Result<(), PreprocError> {
        if let Payload::Fss(keys) = &material.payload
            && keys.party() != self.party
        {
            return Err(PreprocError::WrongParty { expected: self.party, found: keys.party() });
        }
        if !self.seen.insert(material.id) {
            return Err(PreprocError::Reused { id: material.id.to_string() });
        }
        self.queues.entry(material.kind).or_default().push_back(material);
        Ok(())
    }

    /// Move every item into a new store labelled `bundle` (one chunk of a streaming dealer),
    /// keeping this store's record of the ids it held, so a dealer that goes on filing into it
    /// still refuses an id it dealt before.
    pub(crate) fn split_off(&mut self, bundle: [u8; 16]) -> Preproc {
        let queues = std::mem::take(&mut self.queues);
        let seen = queues.values().flatten().map(|m| m.id).collect();
        Preproc { party: self.party, bundle, queues, seen }
    }

    /// Bytes of the serialised store ([`to_bytes`](Self::to_bytes)'s length), computed without
    /// keeping a serialised copy of the secrets: what a chunk costs to send or to hold.
    pub fn wire_bytes(&self) -> usize {
        let mut total = 8 + 2 + 2 + 16 + 8;
        for m in self.queues.values().flatten() {
            total += 1 + 16 + 1 + 8 * m.dims.len();
            total += match &m.payload {
                Payload::Tensors(tensors) => tensors.iter().map(|t| 8 * t.len()).sum(),
                Payload::Fss(keys) => {
                    let mut count = Sink::count();
                    keys.write(&mut count);
                    count.count
                }
            };
        }
        total
    }

    /// Move all of `other`'s items into this store.
    ///
    /// # Errors
    /// [`PreprocError::WrongParty`] when `other` is for the other party, [`PreprocError::Reused`]
    /// when any item was held before (nothing is added then).
    pub fn absorb(&mut self, other: Preproc) -> Result<(), PreprocError> {
        if other.party != self.party {
            return Err(PreprocError::WrongParty { expected: self.party, found: other.party });
        }
        let items: Vec<Material> = other.queues.into_values().flatten().collect();
        if let Some(dup) = items.iter().find(|m| self.seen.contains(&m.id)) {
            return Err(PreprocError::Reused { id: dup.id.to_string() });
        }
        items.into_iter().try_for_each(|m| self.push(m))
    }

    /// Take the next item of `kind`, which must have shape key `dims`.
    ///
    /// # Errors
    /// [`PreprocError::Exhausted`] or [`PreprocError::WrongShape`] (the item stays in the store).
    fn take_item(&mut self, kind: MaterialKind, dims: &[usize]) -> Result<Payload, PreprocError> {
        let available = self.remaining();
        let queue = self.queues.get_mut(&kind).filter(|q| !q.is_empty());
        let queue = queue.ok_or(PreprocError::Exhausted { expected: kind, available })?;
        let next = queue.front().expect("queue is not empty");
        if next.dims != dims {
            return Err(PreprocError::WrongShape {
                kind,
                expected: dims.to_vec(),
                found: next.dims.clone(),
            });
        }
        Ok(queue.pop_front().expect("queue is not empty").payload)
    }

    /// Take the next item of `kind` with shape key `dims` together with its id (for material that
    /// later items are bound to, such as masks).
    ///
    /// # Errors
    /// As [`take_item`](Self::take_item).
    pub(crate) fn take_with_id(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
    ) -> Result<(MaterialId, Vec<Share>), PreprocError> {
        let id = self.peek_id(kind);
        let shares = self.take(kind, dims)?;
        Ok((id.expect("take succeeded, so an item was there"), shares))
    }

    /// Take the next item of `kind` with shape key `dims`, which must carry the id `expected`
    /// (derived from what it is bound to).
    ///
    /// # Errors
    /// As [`take_item`](Self::take_item); [`PreprocError::Unbound`] when the next item was made
    /// for other operands (it stays in the store).
    pub(crate) fn take_bound(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
        expected: MaterialId,
    ) -> Result<Vec<Share>, PreprocError> {
        if let Some(found) = self.peek_id(kind)
            && found != expected
        {
            return Err(PreprocError::Unbound {
                kind,
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        self.take(kind, dims)
    }

    fn peek_id(&self, kind: MaterialKind) -> Option<MaterialId> {
        self.queues.get(&kind).and_then(|q| q.front()).map(|m| m.id)
    }

    /// Take the next Beaver item of `kind` with shape key `dims`.
    ///
    /// # Errors
    /// As [`take_item`](Self::take_item).
    pub(crate) fn take(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
    ) -> Result<Vec<Share>, PreprocError> {
        match self.take_item(kind, dims)? {
            Payload::Tensors(t) => Ok(t.into_iter().map(Share::new).collect()),
            Payload::Fss(_) => unreachable!("Beaver kinds hold tensors (push and load check it)"),
        }
    }

    /// Take the next FSS item of type `T` with shape key `dims` (see
    /// [`gates::material`](super::gates::material) for each kind's key): one-time material,
    /// moved out of the store.
    ///
    /// # Errors
    /// [`PreprocError::Exhausted`] when no item of that kind is left, [`PreprocError::WrongShape`]
    /// when the next one has another length, width, degree or word count (it stays in the
    /// store); the material's party was checked when it entered the store.
    pub fn take_fss<T: FssItem>(&mut self, dims: &[usize]) -> Result<T, PreprocError> {
        match self.take_item(T::KIND, dims)? {
            Payload::Fss(m) => Ok(T::from_material(*m).expect("the queue of T::KIND holds T")),
            Payload::Tensors(_) => unreachable!("FSS kinds hold keys (push and load check it)"),
        }
    }

    /// As [`take_fss`](Self::take_fss), for an item that must carry the id `expected` (derived
    /// from the masked operand it was made for).
    ///
    /// # Errors
    /// As [`take_fss`](Self::take_fss); [`PreprocError::Unbound`] when the next item was made for
    /// another operand (it stays in the store).
    pub(crate) fn take_fss_bound<T: FssItem>(
        &mut self,
        dims: &[usize],
        expected: MaterialId,
    ) -> Result<T, PreprocError> {
        if let Some(found) = self.peek_id(T::KIND)
            && found != expected
        {
            return Err(PreprocError::Unbound {
                kind: T::KIND,
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
        self.take_fss(dims)
    }

    /// Take the next raw DCF (`words` ≥ 1), DPF or comparison key batch of `len` keys on `n` bits.
    ///
    /// # Errors
    /// As [`take_fss`](Self::take_fss).
    pub fn take_key_batch(
        &mut self,
        scheme: crate::fss::Scheme,
        len: usize,
        n: u32,
        words: u32,
    ) -> Result<crate::fss::KeyBatch, PreprocError> {
        let (kind, dims) = match scheme {
            crate::fss::Scheme::Dcf => {
                (MaterialKind::DcfKeys, vec![len, n as usize, words as usize])
            }
            crate::fss::Scheme::Dpf => (MaterialKind::DpfKeys, vec![len, n as usize]),
            crate::fss::Scheme::Cmp => (MaterialKind::CmpKeys, vec![len, n as usize]),
        };
        match self.take_item(kind, &dims)? {
            Payload::Fss(m) => match *m {
                FssMaterial::Dcf(b) | FssMaterial::Dpf(b) | FssMaterial::Cmp(b) => Ok(b),
                _ => unreachable!("key-batch kinds hold key batches"),
            },
            Payload::Tensors(_) => unreachable!("key-batch kinds hold key batches"),
        }
    }

    /// Serialise (see the module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(self.party.index() as u8);
        out.push(0);
        out.extend_from_slice(&self.bundle);
        out.extend_from_slice(&(self.remaining() as u64).to_le_bytes());
        let mut items: Vec<&Material> = self.queues.values().flatten().collect();
        items.sort_by_key(|m| m.kind as u8); // deterministic order; per-kind order is preserved
        for m in items {
            out.push(m.kind as u8);
            out.extend_from_slice(&m.id.0);
            out.push(m.dims.len() as u8);
            for &d in &m.dims {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            match &m.payload {
                Payload::Tensors(tensors) => {
                    for t in tensors {
                        out.extend_from_slice(&t.to_le_bytes());
                    }
                }
                Payload::Fss(keys) => keys.write(&mut Sink::bytes(&mut out)),
            }
        }
        out
    }

    /// Parse and validate serialised material.
    ///
    /// # Errors
    /// [`PreprocError::Malformed`] (bad magic, version, party, kind, rank, trailing bytes or a
    /// repeated id) or [`PreprocError::Truncated`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PreprocError> {
        let mut r = Reader { bytes, offset: 0 };
        if r.take(8)? != MAGIC {
            return Err(PreprocError::Malformed(
                "not a prifft preprocessing file (bad magic)".into(),
            ));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(PreprocError::Malformed(format!(
                "format version {version}, this build reads {VERSION}"
            )));
        }
        let party = r.u8()?;
        let party = PartyId::from_index(party as usize).ok_or_else(|| {
            PreprocError::Malformed(format!("party byte {party} (must be 0 or 1)"))
        })?;
        if r.u8()? != 0 {
            return Err(PreprocError::Malformed("reserved header byte is not zero".into()));
        }
        let bundle: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
        let count = r.u64()?;
        let mut store = Preproc::new(party, bundle);
        for _ in 0..count {
            let kind = r.u8()?;
            let kind = MaterialKind::from_u8(kind)
                .ok_or_else(|| PreprocError::Malformed(format!("unknown item kind {kind}")))?;
            let id = MaterialId(r.take(16)?.try_into().expect("16 bytes"));
            let rank = r.u8()? as usize;
            let rank_ok = match kind {
                MaterialKind::MatTriple => rank == 3,
                MaterialKind::MaskedProduct => rank == 4,
                _ => rank <= MAX_RANK,
            };
            // FSS kinds check their rank against their own shape key.
            if !rank_ok {
                return Err(PreprocError::Malformed(format!("{kind} with rank {rank}")));
            }
            let dims = (0..rank)
                .map(|_| {
                    r.u64().and_then(|d| {
                        usize::try_from(d)
                            .map_err(|_| PreprocError::Malformed("dimension too large".into()))
                    })
                })
                .collect::<Result<Vec<usize>, _>>()?;
            crate::ring::check_shape("preprocessing item", &dims).map_err(|_| {
                PreprocError::Malformed(format!("{kind} with impossible shape {dims:?}"))
            })?;
            let payload = if kind.is_fss() {
                Payload::Fss(Box::new(FssMaterial::read(&mut r, kind, &dims, party)?))
            } else {
                let mut tensors = Vec::new();
                for shape in kind.tensor_shapes(&dims) {
                    let elems = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
                    let nbytes = elems
                        .and_then(|e| e.checked_mul(8))
                        .ok_or_else(|| PreprocError::Malformed("tensor size overflows".into()))?;
                    let data = r.take(nbytes)?;
                    let tensor = RingTensor::from_le_bytes(&shape, data).map_err(|_| {
                        PreprocError::Malformed(format!("{kind} of shape {shape:?}"))
                    })?;
                    tensors.push(tensor);
                }
                Payload::Tensors(tensors)
            };
            store
                .push(Material { id, kind, dims, payload })
                .map_err(|_| PreprocError::Malformed(format!("item id {id} appears twice")))?;
        }
        if r.offset != bytes.len() {
            return Err(PreprocError::Malformed(format!(
                "{} trailing byte(s) after {count} item(s)",
                bytes.len() - r.offset
            )));
        }
        Ok(store)
    }

    /// Write to `path` with owner-only permissions (on Unix, mode 0600: the file holds secret
    /// shares) — also when `path` already exists with a wider mode: the bytes go to a fresh
    /// owner-only file beside it, which then replaces `path` atomically, so no reader ever sees
    /// a partial file or a wider mode. The serialised copy in memory is zeroed afterwards.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path.
    pub fn write_file(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let suffix: u64 = rand::Rng::random(&mut crate::prg::os_rng());
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp-{suffix:016x}"));
        let tmp = path.with_file_name(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut bytes = self.to_bytes();
        let written = (|| {
            let mut file = options.open(&tmp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        zeroize::Zeroize::zeroize(&mut bytes);
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }

    /// Load a file for a session, consuming its bundle in `ledger` ([`Ledger::consume`](super::ledger::Ledger::consume)): the
    /// second load of the same bundle by the same party — in any process that uses this ledger
    /// — is refused with an error naming the bundle.
    ///
    /// # Errors
    /// As [`read_file`](Self::read_file); [`PreprocError::BundleUsed`]; ledger I/O errors.
    pub fn consume_file(path: &Path, ledger: &super::ledger::Ledger) -> Result<Self> {
        let store = Self::read_file(path)?;
        ledger.consume(store.bundle, store.party)?;
        Ok(store)
    }

    /// Read and validate a file written by [`write_file`](Self::write_file). This alone does not
    /// stop a later process from loading the same file again: sessions use
    /// [`consume_file`](Self::consume_file).
    ///
    /// # Errors
    /// [`Error::Io`] naming the path, or the [`from_bytes`](Self::from_bytes) errors.
    pub fn read_file(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Self::from_bytes(&bytes)?)
    }
}

/// A checked reader over serialised material.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], PreprocError> {
        let left = self.bytes.len() - self.offset;
        if n > left {
            return Err(PreprocError::Truncated { offset: self.offset, needed: n - left });
        }
        let out = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, PreprocError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PreprocError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, PreprocError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}
