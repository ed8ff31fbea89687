//! Hybrid sharing: masked values beside additive shares, and the masked tensor product with mask
//! reuse (PriFFT's "tensor products", in the style of ABY2.0).
//!
//! **Forms.** An additive share ⟨x⟩ ([`Share`]) is one party's half of x = ⟨x⟩₀ + ⟨x⟩₁. A masked
//! value ([`MaskedTensor`]) is the public x̂ = x + r, known to both parties, with the party's share ⟨r⟩
//! of a one-time dealer mask r. They are distinct types, so a masked value cannot be used as a
//! share by mistake.
//!
//! - additive → masked ([`mask`]): each party sends ⟨x⟩ − ⟨r⟩ and adds what it receives: one
//!   round, 8 bytes per element per party. Every FSS gate opens its input this way anyway, so the
//!   opening is shared with the next nonlinear gate.
//! - masked → additive ([`MaskedTensor::to_additive`]): local, P0 takes x̂ − ⟨r⟩₀, P1 takes −⟨r⟩₁.
//!
//! **Masked tensor product** ([`matmul`]). For A (m×k) and B (k×n) in masked form,
//! AB = ÂB̂ − Â·R_B − R_A·B̂ + R_A·R_B, so with the dealer's ⟨R_A·R_B⟩ each party computes
//! ⟨AB⟩ locally: **no online communication** beyond opening the operands. In a training step the
//! weights W are opened once and Ŵ serves the forward X·W and (as Ŵᵀ, [`MaskedTensor::t`]) the backward
//! dY·Wᵀ, and X̂ serves dW = X̂ᵀ·dY: each product costs only the correlation, and each opening is
//! proportional to its tensor, not to the products it feeds. Compare the Beaver product
//! ([`beaver::matmul`](super::beaver::matmul)): 8·(mk + kn) bytes per party per product.
//! Operands of rank 3 are batches (per attention head) of matrices.
//!
//! **Binding.** The correlation ⟨R_A·R_B⟩ is only right for the masks it was made from. Its id
//! is derived from the two masks' ids and orientations, and the party checks it before use: a
//! product on operands the dealer did not plan is [`PreprocError::Unbound`](super::PreprocError::Unbound), not a wrong result.
//!
//! **What each party learns.** Opening x̂ = x + r with a uniform one-time r reveals nothing about
//! x; the product is local. Outputs are additive shares, exact in Z_2^64 (fixed-point operands
//! give 2f fractional bits: truncate afterwards).
//!
//! **FSS gates on a masked tensor** ([`relu`], [`drelu`], [`spline`], [`ars`], [`contains`],
//! [`lookup`]). A gate opens its input x + r; when
//! the input is already a masked tensor, the dealer makes the gate's keys for the tensor's own
//! mask ([`gen_relu`], [`gen_drelu`], [`gen_spline`], [`gen_shift`], [`gen_interval`],
//! [`gen_lut`]) and the gate evaluates on x̂ directly: **no online
//! communication**. So one opening of a layer's output serves both its nonlinearity and, in the
//! backward pass, the products that reuse it. The keys are bound to the mask by their id as the
//! product correlations are.
//!
//! **Dealer.** [`gen_mask`] deals ⟨r⟩ and returns the cleartext mask to the dealer as a
//! [`DealerMask`] (it never leaves the dealer), which [`gen_matmul`] uses for ⟨R_A·R_B⟩.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::error::Result;
use super::gates::{self, material::FssItem, material::Masked as GateKeys};
use super::preproc::{MaterialId, MaterialKind};
use super::{Dealer, MpcError, PartyCtx, PartyId, Share};
use crate::backend::{Backend, ElemOp};
use crate::net::{Channel, exchange};
use crate::ring::{RingTensor, check_shape};

/// A mask as the dealer keeps it: the cleartext r, its item id and orientation. Dealer-only;
/// prints only its shape and zeroises r on drop.
pub struct DealerMask {
    id: MaterialId,
    value: RingTensor,
    transposed: bool,
}

impl std::fmt::Debug for DealerMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealerMask").field("shape", &self.value.shape()).finish_non_exhaustive()
    }
}

impl Drop for DealerMask {
    fn drop(&mut self) {
        self.value.as_mut_slice().zeroize();
    }
}

impl DealerMask {
    /// The mask of the transposed tensor (last two dimensions swapped).
    ///
    /// # Errors
    /// [`MpcError::Shape`] for a tensor of rank below 2 or above 3.
    pub fn t(&self) -> Result<DealerMask> {
        Ok(DealerMask { id: self.id, value: transpose(&self.value)?, transposed: !self.transposed })
    }

    /// The masked tensor's shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The mask item's id.
    pub(crate) fn id(&self) -> MaterialId {
        self.id
    }

    /// The cleartext mask (dealer-only).
    pub(crate) fn value(&self) -> &RingTensor {
        &self.value
    }

    /// The mask of the tensor seen in another shape with the same elements
    /// ([`MaskedTensor::reshape`]).
    ///
    /// # Errors
    /// [`MpcError::Shape`] when the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<DealerMask> {
        Ok(DealerMask {
            id: self.id,
            value: reshape(&self.value, shape)?,
            transposed: self.transposed,
        })
    }

    /// The mask of the tensor with each element repeated `cols` times along a new last
    /// dimension ([`MaskedTensor::broadcast`]).
    ///
    /// # Errors
    /// [`MpcError::Shape`] for an impossible shape.
    pub fn broadcast(&self, cols: usize) -> Result<DealerMask> {
        Ok(DealerMask {
            id: self.id,
            value: broadcast(&self.value, cols)?,
            transposed: self.transposed,
        })
    }
}

fn reshape(t: &RingTensor, shape: &[usize]) -> Result<RingTensor> {
    if shape.iter().product::<usize>() != t.len() {
        return Err(MpcError::Shape {
            op: "masked::reshape",
            left: t.shape().to_vec(),
            right: shape.to_vec(),
        });
    }
    Ok(RingTensor::from_vec(shape, t.as_slice().to_vec())?)
}

fn broadcast(t: &RingTensor, cols: usize) -> Result<RingTensor> {
    let mut shape = t.shape().to_vec();
    shape.push(cols);
    check_shape("masked::broadcast", &shape)?;
    let data = t.as_slice().iter().flat_map(|&v| std::iter::repeat_n(v, cols)).collect();
    Ok(RingTensor::from_vec(&shape, data)?)
}

/// One party's masked value: the public x̂ = x + r and its share ⟨r⟩ of the mask.
///
/// x̂ is public to both parties (not secret); ⟨r⟩ is. Prints only its shape; the mask share is
/// zeroed when dropped (as every [`Share`]).
#[derive(Clone)]
pub struct MaskedTensor {
    public: RingTensor,
    mask: Share,
    mask_id: MaterialId,
    transposed: bool,
}

impl std::fmt::Debug for MaskedTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedTensor").field("shape", &self.public.shape()).finish_non_exhaustive()
    }
}

impl MaskedTensor {
    /// The public masked value x̂ = x + r.
    pub fn public(&self) -> &RingTensor {
        &self.public
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        self.public.shape()
    }

    /// The mask item's id.
    pub(crate) fn mask_id(&self) -> MaterialId {
        self.mask_id
    }

    /// This party's share of the mask.
    pub(crate) fn mask_share(&self) -> &Share {
        &self.mask
    }

    /// Back to an additive share, locally: P0 holds x̂ − ⟨r⟩₀, P1 holds −⟨r⟩₁.
    pub fn to_additive(&self, party: PartyId) -> Share {
        let minus_r = Share::new(self.mask.tensor().neg());
        minus_r.add_public(party, &self.public).expect("x̂ and ⟨r⟩ have one shape")
    }

    /// The same tensor in another shape with the same elements (row-major), locally. It keeps
    /// its mask, so products dealt for the reshaped mask ([`DealerMask::reshape`]) accept it.
    ///
    /// # Errors
    /// [`MpcError::Shape`] when the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Result<MaskedTensor> {
        Ok(MaskedTensor {
            public: reshape(&self.public, shape)?,
            mask: Share::new(reshape(self.mask.tensor(), shape)?),
            mask_id: self.mask_id,
            transposed: self.transposed,
        })
    }

    /// Each element repeated `cols` times along a new last dimension (a per-row value spread
    /// over its row), locally; products take the dealer's [`DealerMask::broadcast`].
    ///
    /// # Errors
    /// [`MpcError::Shape`] for an impossible shape.
    pub fn broadcast(&self, cols: usize) -> Result<MaskedTensor> {
        Ok(MaskedTensor {
            public: broadcast(&self.public, cols)?,
            mask: Share::new(broadcast(self.mask.tensor(), cols)?),
            mask_id: self.mask_id,
            transposed: self.transposed,
        })
    }

    /// The transposed tensor in masked form (last two dimensions swapped), locally: x̂ᵀ with ⟨rᵀ⟩.
    ///
    /// # Errors
    /// [`MpcError::Shape`] for a tensor of rank below 2 or above 3.
    pub fn t(&self) -> Result<MaskedTensor> {
        Ok(MaskedTensor {
            public: transpose(&self.public)?,
            mask: Share::new(transpose(self.mask.tensor())?),
            mask_id: self.mask_id,
            transposed: !self.transposed,
        })
    }
}

/// (batch, rows, cols) of a rank-2 (batch 1) or rank-3 tensor.
fn batch_dims(shape: &[usize], op: &'static str) -> Result<(usize, usize, usize)> {
    match *shape {
        [r, c] => Ok((1, r, c)),
        [b, r, c] => Ok((b, r, c)),
        _ => Err(MpcError::Shape { op, left: shape.to_vec(), right: vec![] }),
    }
}

/// Swap the last two dimensions of a rank-2 or rank-3 tensor.
fn transpose(t: &RingTensor) -> Result<RingTensor> {
    let (b, r, c) = batch_dims(t.shape(), "masked::transpose")?;
    let src = t.as_slice();
    let mut out = vec![0u64; src.len()];
    for h in 0..b {
        let (s, d) = (&src[h * r * c..(h + 1) * r * c], &mut out[h * r * c..(h + 1) * r * c]);
        for i in 0..r {
            for j in 0..c {
                d[j * r + i] = s[i * c + j];
            }
        }
    }
    let shape = if t.shape().len() == 2 { vec![c, r] } else { vec![b, c, r] };
    Ok(RingTensor::from_vec(&shape, out)?)
}

/// The shape key [batch, m, k, n] of a product of `a` and `b`, checking that they fit.
fn product_dims(a: &[usize], b: &[usize]) -> Result<[usize; 4]> {
    let (ba, m, k) = batch_dims(a, "masked::matmul")?;
    let (bb, k2, n) = batch_dims(b, "masked::matmul")?;
    if ba != bb || k != k2 || a.len() != b.len() {
        return Err(MpcError::Shape { op: "masked::matmul", left: a.to_vec(), right: b.to_vec() });
    }
    Ok([ba, m, k, n])
}

/// The id of the correlation for masks (`a`, transposed?) · (`b`, transposed?).
fn product_id(a: (MaterialId, bool), b: (MaterialId, bool)) -> MaterialId {
    let mut h = Sha256::new();
    h.update(b"prifft masked product v1");
    h.update(a.0.0);
    h.update([u8::from(a.1)]);
    h.update(b.0.0);
    h.update([u8::from(b.1)]);
    let digest = h.finalize();
    MaterialId(digest[..16].try_into().expect("16 bytes"))
}

/// Batched product on the backend: [batch, m, k] · [batch, k, n] → [batch, m, n] (rank as `a`).
fn batched_matmul(be: &dyn Backend, a: &RingTensor, b: &RingTensor) -> Result<RingTensor> {
    let [batch, m, k, n] = product_dims(a.shape(), b.shape())?;
    let mut out = vec![0u64; batch * m * n];
    for h in 0..batch {
        be.matmul(
            &a.as_slice()[h * m * k..(h + 1) * m * k],
            &b.as_slice()[h * k * n..(h + 1) * k * n],
            (m, k, n),
            &mut out[h * m * n..(h + 1) * m * n],
        )?;
    }
    let shape = if a.shape().len() == 2 { vec![m, n] } else { vec![batch, m, n] };
    Ok(RingTensor::from_vec(&shape, out)?)
}

fn elem(be: &dyn Backend, op: ElemOp, a: &RingTensor, b: &RingTensor) -> Result<RingTensor> {
    let mut out = vec![0; a.len()];
    be.elementwise(op, a.as_slice(), b.as_slice(), &mut out)?;
    Ok(RingTensor::from_vec(a.shape(), out)?)
}

/// Dealer: a one-time mask for a tensor of `shape` (rank 1–3); deals ⟨r⟩ to both parties and
/// returns r to the dealer for the products it will feed.
///
/// # Errors
/// [`MpcError::Shape`] for an impossible shape.
pub fn gen_mask(dealer: &mut Dealer, shape: &[usize]) -> Result<DealerMask> {
    check_shape("masked::gen_mask", shape)?;
    let value = RingTensor::random(shape, dealer.rng());
    let id = MaterialId(rand::Rng::random(dealer.rng()));
    dealer.deal_with_id(MaterialKind::Mask, shape, vec![value.clone()], id)?;
    Ok(DealerMask { id, value, transposed: false })
}

/// Dealer: the correlation ⟨R_A·R_B⟩ for one masked product of tensors masked by `a` and `b`
/// (each possibly [`DealerMask::t`]); the parties' [`matmul`] checks that its operands carry
/// these masks.
///
/// # Errors
/// [`MpcError::Shape`] when the shapes do not multiply; [`PreprocError::Reused`](super::PreprocError::Reused) when this
/// product (same masks, same orientations) was dealt before.
pub fn gen_matmul(dealer: &mut Dealer, a: &DealerMask, b: &DealerMask) -> Result<()> {
    let dims = product_dims(a.value.shape(), b.value.shape())?;
    let mut product = batched_matmul(&crate::backend::Cpu, &a.value, &b.value)?;
    let [batch, m, _, n] = dims;
    product = RingTensor::from_vec(&[batch, m, n], product.into_vec())?;
    let id = product_id((a.id, a.transposed), (b.id, b.transposed));
    dealer.deal_with_id(MaterialKind::MaskedProduct, &dims, vec![product], id)
}

/// The id of gate keys `kind` made for the mask `mask` (in orientation `transposed`).
fn gate_id(kind: MaterialKind, mask: (MaterialId, bool), tag: u8) -> MaterialId {
    let mut h = Sha256::new();
    h.update(b"prifft gate on masked tensor v1");
    h.update([kind as u8, tag]);
    h.update(mask.0.0);
    h.update([u8::from(mask.1)]);
    let digest = h.finalize();
    MaterialId(digest[..16].try_into().expect("16 bytes"))
}

/// Dealer: file a gate's two halves for the masked tensor of `mask`. The items keep a (fresh)
/// sharing of the mask, as every gate item does; the masked-tensor path does not read it.
fn deal_gate_on<K>(dealer: &mut Dealer, mask: &DealerMask, keys: [K; 2], tag: u8) -> Result<()>
where
    GateKeys<K>: FssItem,
{
    let r = mask.value.as_slice();
    let s0: Vec<u64> = (0..r.len()).map(|_| rand::Rng::random(dealer.rng())).collect();
    let s1: Vec<u64> = r.iter().zip(&s0).map(|(&r, &a)| r.wrapping_sub(a)).collect();
    let [k0, k1] = keys;
    let id = gate_id(<GateKeys<K> as FssItem>::KIND, (mask.id, mask.transposed), tag);
    dealer.deal_fss_with_id(
        [
            GateKeys { mask: s0, keys: k0 }.into_material(),
            GateKeys { mask: s1, keys: k1 }.into_material(),
        ],
        id,
    )
}

/// Dealer: ReLU keys of width m for the masked tensor of `mask` ([`relu`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 2 ≤ m ≤ 64;
/// [`PreprocError::Reused`](super::PreprocError::Reused) when this mask already has ReLU keys.
pub fn gen_relu(dealer: &mut Dealer, width: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::relu::keygen(width, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// Dealer: sign (DReLU) keys of width m for the masked tensor of `mask` ([`drelu`]).
///
/// # Errors
/// As [`gen_relu`].
pub fn gen_drelu(dealer: &mut Dealer, width: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::sign::keygen(width, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// Take the gate keys made for `x`'s mask and evaluate them on x̂: no communication.
/// `params` are the gate's shape key after the length (width; width and degree or shift).
fn gate_on<C: Channel, K>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    params: &[usize],
    tag: u8,
    eval: impl FnOnce(&dyn Backend, &K, &[u64], &mut [u64]) -> crate::mpc::error::Result<()>,
) -> Result<Share>
where
    GateKeys<K>: FssItem,
{
    gate_on_shaped(ctx, x, params, tag, x.shape(), eval)
}

/// As [`gate_on`] for a gate whose output has `shape` (a whole number of x's length: a gate with
/// several outputs per element writes them block after block).
fn gate_on_shaped<C: Channel, K>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    params: &[usize],
    tag: u8,
    shape: &[usize],
    eval: impl FnOnce(&dyn Backend, &K, &[u64], &mut [u64]) -> crate::mpc::error::Result<()>,
) -> Result<Share>
where
    GateKeys<K>: FssItem,
{
    let id = gate_id(<GateKeys<K> as FssItem>::KIND, (x.mask_id, x.transposed), tag);
    let mut dims = vec![x.public.len()];
    dims.extend_from_slice(params);
    let item: GateKeys<K> = ctx.preproc.take_fss_bound(&dims, id)?;
    let mut out = vec![0u64; shape.iter().product()];
    eval(ctx.backend(), item.keys(), x.public.as_slice(), &mut out)?;
    Ok(Share::new(RingTensor::from_vec(shape, out)?))
}

/// ⟨max(x, 0)⟩ for a masked tensor x in the signed m-bit range, from keys made for its mask
/// ([`gen_relu`]; the function is [`gates::relu::spec`]). No communication.
///
/// # Errors
/// [`PreprocError::Unbound`](super::PreprocError::Unbound) when the next ReLU keys were made for
/// another mask; other preprocessing and backend errors.
pub fn relu<C: Channel>(ctx: &mut PartyCtx<C>, x: &MaskedTensor, width: u32) -> Result<Share> {
    gate_on(ctx, x, &[width as usize], 0, gates::relu::relu)
}

/// ⟨[x ≥ 0]⟩ for a masked tensor x in the signed m-bit range, from keys made for its mask
/// ([`gen_drelu`]). No communication.
///
/// # Errors
/// As [`relu`].
pub fn drelu<C: Channel>(ctx: &mut PartyCtx<C>, x: &MaskedTensor, width: u32) -> Result<Share> {
    gate_on(ctx, x, &[width as usize], 0, gates::sign::drelu)
}

/// Dealer: ReLU keys (with `select`, for [`relu_cmp`]) or DReLU keys (without, for
/// [`drelu_cmp`]) of width m from a one-bit comparison, for the masked tensor of `mask`: about a
/// third of [`gen_relu`]'s key bytes, for one more round.
///
/// # Errors
/// As [`gen_relu`].
pub fn gen_relu_cmp(
    dealer: &mut Dealer,
    width: u32,
    select: bool,
    mask: &DealerMask,
) -> Result<()> {
    gen_relu_cmp_saved(dealer, width, select, mask).map(drop)
}

/// Dealer: as [`gen_relu_cmp`], keeping the bit [x ≥ 0] in affine form (one term: the ρ that
/// hides the opened bit) for later products with it.
///
/// # Errors
/// As [`gen_relu_cmp`].
pub fn gen_relu_cmp_saved(
    dealer: &mut Dealer,
    width: u32,
    select: bool,
    mask: &DealerMask,
) -> Result<super::affine::DealerAffine> {
    let keys = gates::cmp_relu::keygen(width, select, mask.value.as_slice(), dealer.rng())?;
    let rho = keys[0].rho.iter().zip(&keys[1].rho).map(|(a, b)| a.wrapping_add(*b)).collect();
    deal_gate_on(dealer, mask, keys, u8::from(select))?;
    let id = super::affine::output_id((mask.id, mask.transposed), 0x80 | u8::from(select));
    Ok(super::affine::DealerAffine::new(id, mask.shape(), 1, rho))
}

/// ⟨max(x, 0)⟩ and ⟨[x ≥ 0]⟩ for a masked tensor x in the signed m-bit range, from keys made
/// for its mask ([`gen_relu_cmp`] with `select`; the functions of [`gates::relu::spec`] and
/// [`gates::sign`]). One round: each party sends ⌈len/8⌉ bytes (its share of the masked bit
/// d ⊕ ρ, see [`gates::cmp_relu`]).
///
/// # Errors
/// [`PreprocError::Unbound`](super::PreprocError::Unbound) for keys of another mask; a protocol
/// error when the peer's bits are malformed; other preprocessing, channel and backend errors.
pub fn relu_cmp<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
) -> Result<(Share, Share)> {
    let (d, y, _) = cmp_gate(ctx, x, width, true)?;
    Ok((Share::new(RingTensor::from_vec(x.shape(), y)?), d))
}

/// Party: as [`relu_cmp`] with keys from [`gen_relu_cmp_saved`], the bit in affine form.
///
/// # Errors
/// As [`relu_cmp`].
pub fn relu_cmp_saved<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
) -> Result<(Share, super::affine::Affine)> {
    let (d, y, opened) = cmp_gate(ctx, x, width, true)?;
    // d = d̂ + (1 − 2d̂)·ρ: P = d̂, coefficient −(1 − 2d̂) = 2d̂ − 1 on ρ.
    let bits: Vec<u64> = (0..x.public.len()).map(|k| (opened[k / 64] >> (k % 64)) & 1).collect();
    let coefs = bits.iter().map(|&b| (b << 1).wrapping_sub(1)).collect();
    let id = super::affine::output_id((x.mask_id, x.transposed), 0x81);
    Ok((
        Share::new(RingTensor::from_vec(x.shape(), y)?),
        super::affine::Affine::new(id, d, bits, coefs),
    ))
}

/// ⟨[x ≥ 0]⟩ for a masked tensor x in the signed m-bit range ([`gen_relu_cmp`] without
/// `select`): as [`relu_cmp`], one round of ⌈len/8⌉ bytes.
///
/// # Errors
/// As [`relu_cmp`].
pub fn drelu_cmp<C: Channel>(ctx: &mut PartyCtx<C>, x: &MaskedTensor, width: u32) -> Result<Share> {
    Ok(cmp_gate(ctx, x, width, false)?.0)
}

fn cmp_gate<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    select: bool,
) -> Result<(Share, Vec<u64>, Vec<u64>)> {
    use gates::cmp_relu::{CmpReluKeys, finish, masked_bits};
    let len = x.public.len();
    let id = gate_id(MaterialKind::CmpReluKeys, (x.mask_id, x.transposed), u8::from(select));
    let dims = [len, width as usize, usize::from(select)];
    let item: GateKeys<CmpReluKeys> = ctx.preproc.take_fss_bound(&dims, id)?;
    let mine = masked_bits(ctx.backend(), item.keys(), x.public.as_slice())?;
    let opened = open_bits(ctx, "masked::relu_cmp", &mine, len)?;
    let (d, y) = finish(item.keys(), ctx.id, x.public.as_slice(), &item.mask, &opened);
    Ok((Share::new(RingTensor::from_vec(x.shape(), d)?), y, opened))
}

/// Open `bits` XOR-shared bits (this party's, packed): one round, ⌈bits/8⌉ bytes each way.
fn open_bits<C: Channel>(
    ctx: &mut PartyCtx<C>,
    op: &'static str,
    mine: &[u64],
    bits: usize,
) -> Result<Vec<u64>> {
    use gates::cmp_relu::bits_to_bytes;
    let theirs = exchange(ctx.channel(), op, bits_to_bytes(mine, bits), bits.div_ceil(8))?;
    xor_opened(op, mine, &theirs, bits)
}

/// The opened bits from this party's packed shares and the peer's bytes (a peer that sets bits
/// beyond the length sent garbage: a protocol error).
fn xor_opened(op: &'static str, mine: &[u64], theirs: &[u8], bits: usize) -> Result<Vec<u64>> {
    let theirs = gates::cmp_relu::bytes_to_bits(theirs, bits).ok_or_else(|| {
        crate::net::NetError::Protocol {
            op,
            expected: format!("{bits} bits"),
            got: "bits set beyond the tensor's length".into(),
        }
    })?;
    Ok(mine.iter().zip(&theirs).map(|(a, b)| a ^ b).collect())
}

/// Dealer: exact-shift keys from one-bit comparisons for the masked tensor of `mask`
/// ([`ars_cmp`]): below m = 64 no wrap key at all (see [`gates::cmp_shift`]), so about a fifth
/// of [`gen_shift`]'s key bytes, for one more round.
///
/// # Errors
/// As [`gen_shift`].
pub fn gen_shift_cmp(dealer: &mut Dealer, width: u32, shift: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::cmp_shift::keygen(width, shift, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// ⟨⌊x / 2^s⌋⟩, exact, for a masked tensor x whose ring value lies in the signed m-bit range
/// (then it is the function of [`ars`]), from keys made for its mask ([`gen_shift_cmp`]): one
/// round of 1 bit per element each way (2 at m = 64).
///
/// # Errors
/// As [`relu_cmp`].
pub fn ars_cmp<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<Share> {
    let (item, opened) = ars_cmp_open(ctx, x, width, s)?;
    let y = gates::cmp_shift::finish(item.keys(), ctx.id, x.public.as_slice(), &opened);
    Ok(Share::new(RingTensor::from_vec(x.shape(), y)?))
}

/// The shift's keys for `x` and its opened bits (the one round of [`ars_cmp`]).
fn ars_cmp_open<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<(GateKeys<gates::cmp_shift::CmpShiftKeys>, Vec<u64>)> {
    let (item, mine, bits) = ars_cmp_bits(ctx, x, width, s)?;
    let opened = open_bits(ctx, "masked::ars_cmp", &mine, bits)?;
    Ok((item, opened))
}

/// The shift's keys for `x`, this party's shares of the masked bits (packed) and their count.
fn ars_cmp_bits<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<(GateKeys<gates::cmp_shift::CmpShiftKeys>, Vec<u64>, usize)> {
    use gates::cmp_shift::{CmpShiftKeys, masked_bits};
    let len = x.public.len();
    let id = gate_id(MaterialKind::CmpShiftKeys, (x.mask_id, x.transposed), 0);
    let dims = [len, width as usize, s as usize];
    let item: GateKeys<CmpShiftKeys> = ctx.preproc.take_fss_bound(&dims, id)?;
    let mine = masked_bits(ctx.backend(), item.keys(), x.public.as_slice())?;
    Ok((item, mine, CmpShiftKeys::bits_per_element(width) * len))
}

/// Dealer: as [`gen_shift_cmp`], keeping the output's affine terms for later products with it
/// ([`affine::gen_mul`](super::affine::gen_mul)).
///
/// # Errors
/// As [`gen_shift_cmp`].
pub fn gen_shift_cmp_saved(
    dealer: &mut Dealer,
    width: u32,
    shift: u32,
    mask: &DealerMask,
) -> Result<super::affine::DealerAffine> {
    let keys = gates::cmp_shift::keygen(width, shift, mask.value.as_slice(), dealer.rng())?;
    let d = gates::cmp_shift::affine_terms(&keys);
    deal_gate_on(dealer, mask, keys, 0)?;
    let id = super::affine::output_id((mask.id, mask.transposed), 0);
    let terms = gates::cmp_shift::AFFINE_TERMS;
    Ok(super::affine::DealerAffine::new(id, mask.shape(), terms, d))
}

/// An exact shift by one-bit comparisons ([`gen_shift_cmp_saved`]'s keys) whose masked bits
/// are computed but not yet opened: the opening is left to the first product with the output
/// ([`affine::mul_deferred`](super::affine::mul_deferred)), which sends those bits in the same
/// message as its own operand — so a gate output needed only by a later product costs no
/// round of its own. Holds the gate's public input and this party's bit shares (not secret:
/// each bit is masked by the dealer's ρ) and the keys' share terms (secret; the comparison keys
/// are dropped once evaluated). Prints its shape only.
pub struct PendingShift {
    id: MaterialId,
    shape: Vec<usize>,
    public: Vec<u64>,
    item: GateKeys<gates::cmp_shift::CmpShiftKeys>,
    mine: Vec<u64>,
    bits: usize,
}

impl std::fmt::Debug for PendingShift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingShift").field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl PendingShift {
    /// The output's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// This party's packed shares of the masked bits and their count (what the deferred
    /// opening sends).
    pub(crate) fn bits(&self) -> (&[u64], usize) {
        (&self.mine, self.bits)
    }

    /// The output in affine form once `opened` (the masked bits, packed) is known: the same
    /// share as [`ars_cmp`] would have given.
    pub(crate) fn finish(&self, party: PartyId, opened: &[u64]) -> Result<super::affine::Affine> {
        let y = gates::cmp_shift::finish_affine(self.item.keys(), party, &self.public, opened);
        let share = Share::new(RingTensor::from_vec(&self.shape, y.share)?);
        Ok(super::affine::Affine::new(self.id, share, y.public, y.coefs))
    }
}

/// Party: [`ars_cmp`] up to its opening, which is deferred ([`PendingShift`]), keeping the
/// output's affine form for the products a backward makes with it: no
/// communication here; the comparison evaluations run now, on `ctx.backend()`.
///
/// # Errors
/// As [`ars_cmp`], less the channel's.
pub fn ars_cmp_deferred<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<PendingShift> {
    let (mut item, mine, bits) = ars_cmp_bits(ctx, x, width, s)?;
    item.keys.release_comparisons();
    Ok(PendingShift {
        id: super::affine::output_id((x.mask_id, x.transposed), 0),
        shape: x.shape().to_vec(),
        public: x.public.as_slice().to_vec(),
        item,
        mine,
        bits,
    })
}

/// Additive → masked ([`mask`]) with `bits` XOR-shared bits opened in the same message: one
/// round, 8 bytes per element and ⌈bits/8⌉ bytes per party. Returns the masked tensor and the
/// opened bits (packed).
///
/// # Errors
/// As [`mask`]; a protocol error for a peer's malformed bits.
pub(crate) fn mask_with_bits<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &Share,
    mine: &[u64],
    bits: usize,
) -> Result<(MaskedTensor, Vec<u64>)> {
    open_masked(ctx, "masked::mask_with_bits", x, mine, bits)
}

/// Take the next mask r of x's shape and open x + r, with `bits` packed XOR-shared bits in the
/// same message (none for a plain [`mask`]).
fn open_masked<C: Channel>(
    ctx: &mut PartyCtx<C>,
    op: &'static str,
    x: &Share,
    mine: &[u64],
    bits: usize,
) -> Result<(MaskedTensor, Vec<u64>)> {
    let (mask_id, shares) = ctx.preproc.take_with_id(MaterialKind::Mask, x.shape())?;
    let r = shares.into_iter().next().expect("a mask item holds one tensor");
    let masked = x.add(&r)?;
    let words = 8 * masked.tensor().len();
    let mut payload = masked.tensor().to_le_bytes();
    payload.extend(gates::cmp_relu::bits_to_bytes(mine, bits));
    let theirs = exchange(ctx.channel(), op, payload, words + bits.div_ceil(8))?;
    let peer = RingTensor::from_le_bytes(x.shape(), &theirs[..words])?;
    let public = masked.tensor().add(&peer)?;
    let opened = xor_opened(op, mine, &theirs[words..], bits)?;
    Ok((MaskedTensor { public, mask: r, mask_id, transposed: false }, opened))
}

/// Dealer: keys for a degree-`degree` spline of width m on the masked tensor of `mask`
/// ([`spline`]).
///
/// # Errors
/// Key errors for a bad width or a degree ≥ 16; [`PreprocError::Reused`](super::PreprocError::Reused)
/// when this mask already has spline keys.
pub fn gen_spline(dealer: &mut Dealer, width: u32, degree: usize, mask: &DealerMask) -> Result<()> {
    gen_spline_tagged(dealer, width, degree, mask, 0)
}

/// As [`gen_spline`], for the spline with use tag `tag`: one mask can carry several splines
/// (a function and its derivative), each bound by its tag ([`spline_tagged`]).
///
/// # Errors
/// As [`gen_spline`], per tag.
pub fn gen_spline_tagged(
    dealer: &mut Dealer,
    width: u32,
    degree: usize,
    mask: &DealerMask,
    tag: u8,
) -> Result<()> {
    let keys = gates::spline::keygen(width, degree, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, tag)
}

/// ⟨f(x)⟩ for a public spline f ([`gates::spline::Spline::spec`]) on a masked tensor, from keys
/// made for its mask ([`gen_spline`]). No communication.
///
/// # Errors
/// As [`relu`]; an invalid spline.
pub fn spline<C: Channel>(
    ctx: &mut PartyCtx<C>,
    f: &gates::spline::Spline,
    x: &MaskedTensor,
) -> Result<Share> {
    spline_tagged(ctx, f, x, 0)
}

/// As [`spline`], with the keys dealt under use tag `tag` ([`gen_spline_tagged`]).
///
/// # Errors
/// As [`spline`].
pub fn spline_tagged<C: Channel>(
    ctx: &mut PartyCtx<C>,
    f: &gates::spline::Spline,
    x: &MaskedTensor,
    tag: u8,
) -> Result<Share> {
    gate_on(ctx, x, &[f.width as usize, f.degree()], tag, |b, k, m, o| {
        gates::spline::eval(b, k, f, m, o)
    })
}

/// Dealer: comparison-spline keys ([`gates::cmp_spline`]) for `f`'s width, degree and piece
/// count on the masked tensor of `mask`, under use tag `tag` ([`cmp_spline_tagged`]).
///
/// # Errors
/// Key errors for a bad width, no pieces or a degree ≥ 16; [`PreprocError::Reused`](super::PreprocError::Reused)
/// when this mask already has such keys under `tag`.
pub fn gen_cmp_spline_tagged(
    dealer: &mut Dealer,
    f: &gates::spline::Spline,
    mask: &DealerMask,
    tag: u8,
) -> Result<()> {
    let (m, d, p) = (f.width, f.degree(), f.coeffs.len());
    let keys = gates::cmp_spline::keygen(m, d, p, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, tag)
}

/// ⟨f(x)⟩ for a public spline f ([`gates::spline::Spline::spec`], the same function as
/// [`spline_tagged`]) on a masked tensor, from comparison-spline keys made for its mask
/// ([`gen_cmp_spline_tagged`]): one round of p − 1 bits per element each way (p pieces).
///
/// # Errors
/// As [`spline`]; a protocol error for a peer's malformed bits.
pub fn cmp_spline_tagged<C: Channel>(
    ctx: &mut PartyCtx<C>,
    f: &gates::spline::Spline,
    x: &MaskedTensor,
    tag: u8,
) -> Result<Share> {
    let [y] = <[Share; 1]>::try_from(cmp_splines_tagged(ctx, &[f], x, tag)?)
        .expect("one spline, one output");
    Ok(y)
}

/// ⟨f(x)⟩ for each of several public splines with the same breakpoints, width and degree (a
/// joint fit, [`Approx::fit_joint`](super::nonlinear::approx::Approx::fit_joint)) from **one**
/// comparison-spline key made for the first ([`gen_cmp_spline_tagged`]): the breakpoint bits
/// are the same for all, so the extra splines cost no AES and no communication, only their
/// local finish. One round of p − 1 bits per element each way.
///
/// # Errors
/// As [`cmp_spline_tagged`]; [`KeyError::Mismatch`](crate::fss::KeyError::Mismatch) for no
/// spline or splines with different breakpoints, widths or degrees.
pub fn cmp_splines_tagged<C: Channel>(
    ctx: &mut PartyCtx<C>,
    fs: &[&gates::spline::Spline],
    x: &MaskedTensor,
    tag: u8,
) -> Result<Vec<Share>> {
    use gates::cmp_spline::{CmpSplineKeys, finish, masked_bits};
    let mismatch = |found: String| crate::fss::KeyError::Mismatch {
        what: "splines evaluated together",
        expected: "one or more splines with the same breakpoints, width and degree".into(),
        found,
    };
    let f = fs.first().ok_or_else(|| mismatch("none".into()))?;
    if let Some(g) =
        fs.iter().find(|g| (g.width, g.degree(), &g.breaks) != (f.width, f.degree(), &f.breaks))
    {
        return Err(mismatch(format!(
            "width {} degree {} with {} breakpoints beside width {} degree {} with {}",
            g.width,
            g.degree(),
            g.breaks.len(),
            f.width,
            f.degree(),
            f.breaks.len()
        ))
        .into());
    }
    let len = x.public.len();
    let id = gate_id(MaterialKind::CmpSplineKeys, (x.mask_id, x.transposed), tag);
    let dims = [len, f.width as usize, f.degree(), f.coeffs.len()];
    let item: GateKeys<CmpSplineKeys> = ctx.preproc.take_fss_bound(&dims, id)?;
    let mine = masked_bits(ctx.backend(), item.keys(), f, x.public.as_slice())?;
    let bits = item.keys().bits_per_element() * len;
    let opened = open_bits(ctx, "masked::cmp_spline", &mine, bits)?;
    finish(item.keys(), fs, x.public.as_slice(), &opened)?
        .into_iter()
        .map(|y| Ok(Share::new(RingTensor::from_vec(x.shape(), y)?)))
        .collect()
}

/// Dealer: exact-shift keys (width m, shift s) for the masked tensor of `mask` ([`ars`],
/// [`lrs`]), in range mode ([`gates::shift::keygen_in_range`]: no wrap DCF below m = 64, so the
/// input's whole ring value must lie in the gate's range — the protocols' bounded values do).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 2 ≤ m ≤ 64 and 1 ≤ s < m;
/// [`PreprocError::Reused`](super::PreprocError::Reused) when this mask already has shift keys.
pub fn gen_shift(dealer: &mut Dealer, width: u32, shift: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::shift::keygen_in_range(width, shift, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// ⟨⌊x / 2^s⌋⟩, exact, for a masked tensor whose ring value is in the signed m-bit range
/// ([`gates::shift::ars_spec`]), from keys
/// made for its mask ([`gen_shift`]): the faithful truncation of a fixed-point product, with no
/// communication once the product is masked.
///
/// # Errors
/// As [`relu`].
pub fn ars<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<Share> {
    gate_on(ctx, x, &[width as usize, s as usize], 0, gates::shift::ars)
}

/// ⟨⌊y / 2^s⌋⟩, exact, for an unsigned m-bit masked tensor y ∈ [0, 2^m)
/// ([`gates::shift::lrs_spec`]), from the same keys as [`ars`] ([`gen_shift`]; one set per
/// mask serves either shift): digits, bucket indices and the high bits of a value. No
/// communication.
///
/// # Errors
/// As [`relu`].
pub fn lrs<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    s: u32,
) -> Result<Share> {
    gate_on(ctx, x, &[width as usize, s as usize], 0, gates::shift::lrs)
}

/// Dealer: interval-containment keys of width m for the masked tensor of `mask` ([`contains`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 1 ≤ m ≤ 64;
/// [`PreprocError::Reused`](super::PreprocError::Reused) when this mask already has such keys.
pub fn gen_interval(dealer: &mut Dealer, width: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::interval::keygen(width, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// ⟨[p ≤ x < q]⟩ for a signed m-bit masked tensor ([`gates::interval::spec`]), from keys made for
/// its mask ([`gen_interval`]). No communication.
///
/// # Errors
/// As [`relu`]; bounds outside the m-bit range.
pub fn contains<C: Channel>(
    ctx: &mut PartyCtx<C>,
    x: &MaskedTensor,
    width: u32,
    (p, q): (i64, i64),
) -> Result<Share> {
    gate_on(ctx, x, &[width as usize], 0, |b, k, m, o| gates::interval::contains(b, k, m, p, q, o))
}

/// Dealer: lookup keys with a b-bit index for the masked tensor of `mask` ([`lookup`]).
///
/// # Errors
/// [`KeyError::Width`](crate::fss::KeyError::Width) unless 1 ≤ b ≤ 24;
/// [`PreprocError::Reused`](super::PreprocError::Reused) when this mask already has such keys.
pub fn gen_lut(dealer: &mut Dealer, index_bits: u32, mask: &DealerMask) -> Result<()> {
    let keys = gates::lut::keygen(index_bits, mask.value.as_slice(), dealer.rng())?;
    deal_gate_on(dealer, mask, keys, 0)
}

/// ⟨T\[x\]⟩ for a public table of 2^b entries and a masked tensor x ∈ [0, 2^b), from keys made for
/// its mask ([`gen_lut`]). No communication.
///
/// # Errors
/// As [`relu`]; a table of another length.
pub fn lookup<C: Channel>(
    ctx: &mut PartyCtx<C>,
    index_bits: u32,
    table: &[u64],
    x: &MaskedTensor,
) -> Result<Share> {
    gate_on(ctx, x, &[index_bits as usize], 0, |b, k, m, o| gates::lut::lookup(b, k, table, m, o))
}

/// Additive → masked: take the next mask of `x`'s shape, open x + r (each party sends
/// ⟨x⟩ + ⟨r⟩): one round, 8 bytes per element per party.
///
/// # Errors
/// Preprocessing errors (no mask of this shape), channel errors.
pub fn mask<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<MaskedTensor> {
    open_masked(ctx, "masked::mask", x, &[], 0).map(|(xh, _)| xh)
}

/// ⟨A·B⟩ from masked A (m×k, or batch × m × k) and B (k×n, or batch × k × n), locally, with the dealer's
/// correlation for exactly these masks: ⟨AB⟩ = [P0: ÂB̂] − Â⟨R_B⟩ − ⟨R_A⟩B̂ + ⟨R_A R_B⟩.
/// No communication. The products run on `ctx.backend()`.
///
/// # Errors
/// [`MpcError::Shape`] when the shapes do not multiply; [`PreprocError::Unbound`](super::PreprocError::Unbound) when the next
/// correlation was made for other masks; other preprocessing errors.
pub fn matmul<C: Channel>(
    ctx: &mut PartyCtx<C>,
    a: &MaskedTensor,
    b: &MaskedTensor,
) -> Result<Share> {
    let dims = product_dims(a.shape(), b.shape())?;
    let id = product_id((a.mask_id, a.transposed), (b.mask_id, b.transposed));
    let shares = ctx.preproc.take_bound(MaterialKind::MaskedProduct, &dims, id)?;
    let rr = shares.into_iter().next().expect("a product item holds one tensor");
    let be = ctx.backend();
    // P0: Â·(B̂ − ⟨R_B⟩₀) − ⟨R_A⟩₀·B̂ + ⟨R_A R_B⟩₀ (two products, not three);
    // P1: −Â·⟨R_B⟩₁ − ⟨R_A⟩₁·B̂ + ⟨R_A R_B⟩₁.
    let right = match ctx.id {
        PartyId::P0 => elem(be, ElemOp::Sub, &b.public, b.mask.tensor())?,
        PartyId::P1 => b.mask.tensor().neg(),
    };
    let a_b = batched_matmul(be, &a.public, &right)?;
    let ra_b = batched_matmul(be, a.mask.tensor(), &b.public)?;
    let rr = RingTensor::from_vec(a_b.shape(), rr.into_tensor().into_vec())?;
    let z = elem(be, ElemOp::Sub, &elem(be, ElemOp::Add, &rr, &a_b)?, &ra_b)?;
    Ok(Share::new(z))
}

/// Additive → masked for several tensors in **one** round: as [`mask`] for each, with all the
/// openings in one message (8 bytes per element per party in all).
///
/// # Errors
/// As [`mask`].
pub fn mask_many<C: Channel>(ctx: &mut PartyCtx<C>, xs: &[&Share]) -> Result<Vec<MaskedTensor>> {
    let mut taken = Vec::with_capacity(xs.len());
    let mut mine = Vec::new();
    for x in xs {
        let (mask_id, shares) = ctx.preproc.take_with_id(MaterialKind::Mask, x.shape())?;
        let r = shares.into_iter().next().expect("a mask item holds one tensor");
        mine.extend(x.add(&r)?.tensor().to_le_bytes());
        taken.push((mask_id, r));
    }
    let len = mine.len();
    let theirs = exchange(ctx.channel(), "masked::mask_many", mine.clone(), len)?;
    let mut at = 0;
    let mut out = Vec::with_capacity(xs.len());
    for (x, (mask_id, r)) in xs.iter().zip(taken) {
        let n = 8 * x.tensor().len();
        let a = RingTensor::from_le_bytes(x.shape(), &mine[at..at + n])?;
        let b = RingTensor::from_le_bytes(x.shape(), &theirs[at..at + n])?;
        at += n;
        out.push(MaskedTensor { public: a.add(&b)?, mask: r, mask_id, transposed: false });
    }
    Ok(out)
}

/// The id of the elementwise-product correlation for masks `a` ⊙ `b`.
fn mul_id(a: (MaterialId, bool), b: (MaterialId, bool)) -> MaterialId {
    let mut h = Sha256::new();
    h.update(b"prifft masked elementwise product v1");
    for (id, t) in [a, b] {
        h.update(id.0);
        h.update([u8::from(t)]);
    }
    let digest = h.finalize();
    MaterialId(digest[..16].try_into().expect("16 bytes"))
}

/// Dealer: the correlation ⟨r_a ⊙ r_b⟩ for one elementwise product of tensors masked by `a`
/// and `b` (of one shape; `a` and `b` may be the same mask, for a square).
///
/// # Errors
/// [`MpcError::Shape`] when the shapes differ; [`PreprocError::Reused`](super::PreprocError::Reused)
/// when this product was dealt before.
pub fn gen_mul(dealer: &mut Dealer, a: &DealerMask, b: &DealerMask) -> Result<()> {
    if a.value.shape() != b.value.shape() {
        return Err(MpcError::Shape {
            op: "masked::gen_mul",
            left: a.value.shape().to_vec(),
            right: b.value.shape().to_vec(),
        });
    }
    let n = a.value.len();
    let product = RingTensor::from_vec(&[n, 1, 1], a.value.mul_elem(&b.value)?.into_vec())?;
    let id = mul_id((a.id, a.transposed), (b.id, b.transposed));
    dealer.deal_with_id(MaterialKind::MaskedProduct, &[n, 1, 1, 1], vec![product], id)
}

/// ⟨a ⊙ b⟩ (elementwise, exact in Z_2^64) from masked a and b of one shape, locally, with the
/// dealer's correlation for these masks ([`gen_mul`]): [P0: â⊙b̂] − â⊙⟨r_b⟩ − ⟨r_a⟩⊙b̂ + ⟨r_a⊙r_b⟩.
/// No communication; the work runs on `ctx.backend()`.
///
/// # Errors
/// [`MpcError::Shape`] when the shapes differ; [`PreprocError::Unbound`](super::PreprocError::Unbound)
/// when the next correlation was made for other masks; other preprocessing errors.
pub fn mul<C: Channel>(ctx: &mut PartyCtx<C>, a: &MaskedTensor, b: &MaskedTensor) -> Result<Share> {
    if a.shape() != b.shape() {
        return Err(MpcError::Shape {
            op: "masked::mul",
            left: a.shape().to_vec(),
            right: b.shape().to_vec(),
        });
    }
    let n = a.public.len();
    let id = mul_id((a.mask_id, a.transposed), (b.mask_id, b.transposed));
    let shares = ctx.preproc.take_bound(MaterialKind::MaskedProduct, &[n, 1, 1, 1], id)?;
    let rr = shares.into_iter().next().expect("a product item holds one tensor");
    let rr = RingTensor::from_vec(a.shape(), rr.into_tensor().into_vec())?;
    let be = ctx.backend();
    let a_rb = elem(be, ElemOp::Mul, &a.public, b.mask.tensor())?;
    let ra_b = elem(be, ElemOp::Mul, a.mask.tensor(), &b.public)?;
    let mut z = elem(be, ElemOp::Sub, &elem(be, ElemOp::Sub, &rr, &a_rb)?, &ra_b)?;
    if ctx.id == PartyId::P0 {
        z = elem(be, ElemOp::Add, &z, &elem(be, ElemOp::Mul, &a.public, &b.public)?)?;
    }
    Ok(Share::new(z))
}

/// Dealer: a secret the dealer itself chooses (a dropout mask, say), handed to the parties
/// directly in masked form: both get v̂ = v + r, each its share of a fresh mask r. Returns
/// the mask for the products it will feed. Neither party learns v.
///
/// # Errors
/// [`MpcError::Shape`] for an impossible shape.
pub fn gen_value(dealer: &mut Dealer, value: &RingTensor) -> Result<DealerMask> {
    check_shape("masked::gen_value", value.shape())?;
    let r = RingTensor::random(value.shape(), dealer.rng());
    let public = value.add(&r)?;
    let s0 = RingTensor::random(value.shape(), dealer.rng());
    let s1 = r.sub(&s0)?;
    let id = MaterialId(rand::Rng::random(dealer.rng()));
    dealer.deal_halves_with_id(
        MaterialKind::MaskedValue,
        value.shape(),
        [vec![public.clone(), s0], vec![public, s1]],
        id,
    )?;
    Ok(DealerMask { id, value: r, transposed: false })
}

/// Party: take the next dealer-chosen secret of `shape` in masked form ([`gen_value`]).
///
/// # Errors
/// Preprocessing errors (none left, another shape).
pub fn take_value<C: Channel>(ctx: &mut PartyCtx<C>, shape: &[usize]) -> Result<MaskedTensor> {
    let (mask_id, mut parts) = ctx.preproc.take_with_id(MaterialKind::MaskedValue, shape)?;
    let mask = parts.pop().expect("a masked value holds two tensors");
    let public = parts.pop().expect("a masked value holds two tensors").into_tensor();
    Ok(MaskedTensor { public, mask, mask_id, transposed: false })
}
