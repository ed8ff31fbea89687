//! Binary (XOR) sharing and CrypTen's comparison: arithmetic-to-binary conversion, a
//! parallel-prefix adder on AND triples, and binary-to-arithmetic conversion.
//!
//! **Comparison** \[x < 0\] ([`ltz`]), as CrypTen computes it: each party's additive share
//! becomes one operand of a binary sum (P0's share x0 is the first operand, XOR-shared as
//! (x0, 0); P1's the second, as (0, x1): no communication), a parallel-prefix adder over the 64
//! bit positions computes x0 + x1 in binary shares, and its most significant bit is converted
//! to an arithmetic share with a dealer bit held in both forms.
//!
//! **Adder** ([`add`]): generate G = a AND b, propagate P = a XOR b (one AND round); then six
//! Kogge–Stone levels at distances 1, 2, …, 32, each with the two ANDs G ⊕= P AND (G ≪ d) and
//! P = P AND (P ≪ d) batched into one round (G and P of a span are exclusive, so XOR serves as
//! OR); the sum is P₀ XOR (G ≪ 1). That is CrypTen's set-propagate-kill circuit: 7 rounds and
//! 1 + 2·6 = 13 AND words, i.e. 16 + 6·32 = 208 bytes per element per party.
//!
//! **Binary to arithmetic** ([`b2a_bit`]): with a dealer bit r held as an XOR share and as an
//! additive share, open z = b XOR r (CrypTen sends it as a 64-bit word: 8 bytes, one round);
//! then b = z + r − 2zr, local since z is public. [`b2a_bits`] converts k-bit values bit by bit
//! in one round (8·k bytes), as CrypTen's `_B2A` does.
//!
//! **Cost of [`ltz`]:** 8 rounds, 216 bytes per element per party (CrypTen measured: 217);
//! preprocessing 13 AND triples and one bit pair per element.
//!
//! **What each party learns:** every opened word is a value XORed with a fresh uniform dealer
//! mask (d = x ⊕ a, e = y ⊕ b of an AND triple, z = b ⊕ r), so nothing.

use super::super::dealer::Sharing;
use super::super::error::Result;
use super::super::preproc::MaterialKind;
use super::super::{Dealer, MpcError, PartyCtx, PartyId, Share};
use crate::net::{Channel, exchange};
use crate::ring::{RingTensor, check_shape};

/// Bit positions of the ring, and Kogge–Stone levels over them.
const BITS: u32 = 64;
const LEVELS: u32 = 6;

/// One party's XOR share of a tensor of 64-bit words: x = x0 ⊕ x1. Distinct from an additive
/// [`Share`], so the two cannot be mixed up. Prints its shape only; zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct BinShare(RingTensor);

impl std::fmt::Debug for BinShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinShare").field("shape", &self.0.shape()).finish_non_exhaustive()
    }
}

impl BinShare {
    /// Treat `tensor` as an XOR share.
    pub fn new(tensor: RingTensor) -> Self {
        Self(tensor)
    }

    /// The share's words.
    pub fn tensor(&self) -> &RingTensor {
        &self.0
    }

    /// Shape of the shared tensor.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// ⟨x ⊕ y⟩ (local).
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn xor(&self, other: &BinShare) -> Result<BinShare> {
        self.zip(other, |a, b| a ^ b)
    }

    /// ⟨x ≪ d⟩ (local).
    pub fn shl(&self, d: u32) -> BinShare {
        BinShare(self.0.map(|v| v << d))
    }

    /// ⟨x ≫ d⟩ (logical, local).
    pub fn shr(&self, d: u32) -> BinShare {
        BinShare(self.0.map(|v| v >> d))
    }

    fn zip(&self, other: &BinShare, f: impl Fn(u64, u64) -> u64) -> Result<BinShare> {
        if self.shape() != other.shape() {
            return Err(MpcError::Shape {
                op: "binary share",
                left: self.shape().to_vec(),
                right: other.shape().to_vec(),
            });
        }
        let v = self.0.as_slice().iter().zip(other.0.as_slice()).map(|(&a, &b)| f(a, b));
        Ok(BinShare(RingTensor::from_vec(self.shape(), v.collect())?))
    }
}

/// Dealer: one AND triple for tensors of `shape`.
///
/// # Errors
/// [`MpcError::Shape`] for a shape above the size limit.
pub fn gen_and(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    check_shape("baseline::gen_and", shape)?;
    let a = RingTensor::random(shape, dealer.rng());
    let b = RingTensor::random(shape, dealer.rng());
    let c = a.as_slice().iter().zip(b.as_slice()).map(|(&a, &b)| a & b).collect();
    let c = RingTensor::from_vec(shape, c)?;
    let xor = |t| (t, Sharing::Xor);
    dealer.deal_mixed(MaterialKind::AndTriple, shape, vec![xor(a), xor(b), xor(c)])
}

/// Party: several ANDs ⟨x_i AND y_i⟩ in one round, each with the next AND triple of its shape
/// (Beaver over GF(2)^64: open d = x ⊕ a and e = y ⊕ b; z = c ⊕ (d ∧ b) ⊕ (e ∧ a), and P0 adds
/// d ∧ e). 16 bytes per word per party.
///
/// # Errors
/// Shape mismatch, preprocessing and channel errors.
pub fn and_many<C: Channel>(
    ctx: &mut PartyCtx<C>,
    pairs: &[(&BinShare, &BinShare)],
) -> Result<Vec<BinShare>> {
    // This party's halves of the opened differences d = x ⊕ a, e = y ⊕ b, and the triples.
    let mut mine = Vec::with_capacity(pairs.len());
    let mut payload = Vec::new();
    for (x, y) in pairs {
        if x.shape() != y.shape() {
            return Err(MpcError::Shape {
                op: "baseline::and",
                left: x.shape().to_vec(),
                right: y.shape().to_vec(),
            });
        }
        let [a, b, c]: [Share; 3] = ctx
            .preproc
            .take(MaterialKind::AndTriple, x.shape())?
            .try_into()
            .expect("AND triples hold 3 tensors");
        let (a, b, c) = (BinShare(a.into_tensor()), BinShare(b.into_tensor()), c.into_tensor());
        let (d, e) = (x.xor(&a)?, y.xor(&b)?);
        payload.extend_from_slice(&d.0.to_le_bytes());
        payload.extend_from_slice(&e.0.to_le_bytes());
        mine.push((d, e, a, b, c));
    }
    let len = payload.len();
    let theirs = exchange(ctx.channel(), "baseline::and", payload, len)?;
    let mut out = Vec::with_capacity(pairs.len());
    let mut offset = 0;
    for (d, e, a, b, c) in mine {
        let n = 8 * d.0.len();
        let open = |mine: &BinShare, at: usize| -> Result<BinShare> {
            mine.xor(&BinShare(RingTensor::from_le_bytes(mine.shape(), &theirs[at..at + n])?))
        };
        let (d, e) = (open(&d, offset)?, open(&e, offset + n)?);
        offset += 2 * n;
        let p0 = ctx.id == PartyId::P0;
        let words = d.0.as_slice().iter().zip(e.0.as_slice());
        let z = words
            .zip(a.0.as_slice().iter().zip(b.0.as_slice()))
            .zip(c.as_slice())
            .map(|(((&d, &e), (&a, &b)), &c)| c ^ (d & b) ^ (e & a) ^ if p0 { d & e } else { 0 })
            .collect();
        out.push(BinShare(RingTensor::from_vec(c.shape(), z)?));
    }
    Ok(out)
}

/// Dealer: the AND triples of one [`add`] of tensors of `shape`.
///
/// # Errors
/// As [`gen_and`].
pub fn gen_add(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    for _ in 0..1 + 2 * LEVELS {
        gen_and(dealer, shape)?;
    }
    Ok(())
}

/// Party: ⟨x + y mod 2^64⟩ in binary shares by the parallel-prefix adder of the module docs:
/// 7 rounds, 208 bytes per element per party.
///
/// # Errors
/// As [`and_many`].
pub fn add<C: Channel>(ctx: &mut PartyCtx<C>, x: &BinShare, y: &BinShare) -> Result<BinShare> {
    let propagate = x.xor(y)?;
    let mut g = and_many(ctx, &[(x, y)])?.remove(0);
    let mut p = propagate.clone();
    for level in 0..LEVELS {
        let d = 1 << level;
        let (gs, ps) = (g.shl(d), p.shl(d));
        let mut r = and_many(ctx, &[(&p, &gs), (&p, &ps)])?;
        p = r.pop().expect("two ANDs");
        g = g.xor(&r.pop().expect("two ANDs"))?;
    }
    propagate.xor(&g.shl(1))
}

/// The two binary operands whose sum is the additively shared x (local): P0's share as the
/// first operand (P1 holds 0 of it), P1's as the second.
pub fn a2b_operands(party: PartyId, x: &Share) -> (BinShare, BinShare) {
    let mine = BinShare(x.tensor().clone());
    let zero = BinShare(RingTensor::zeros(x.shape()));
    match party {
        PartyId::P0 => (mine, zero),
        PartyId::P1 => (zero, mine),
    }
}

/// Dealer: `shape`'s bit pairs for one [`b2a_bit`].
///
/// # Errors
/// As [`gen_and`].
pub fn gen_b2a_bit(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    check_shape("baseline::gen_b2a_bit", shape)?;
    let bits = RingTensor::random(shape, dealer.rng()).map(|v| v & 1);
    dealer.deal_mixed(
        MaterialKind::BitPair,
        shape,
        vec![(bits.clone(), Sharing::Xor), (bits, Sharing::Additive)],
    )
}

/// Party: the arithmetic share of the bit in each word's lowest position (the other bits must
/// be zero): one round, 8 bytes per element.
///
/// # Errors
/// Preprocessing and channel errors.
pub fn b2a_bit<C: Channel>(ctx: &mut PartyCtx<C>, b: &BinShare) -> Result<Share> {
    let [r_xor, r_add]: [Share; 2] = ctx
        .preproc
        .take(MaterialKind::BitPair, b.shape())?
        .try_into()
        .expect("bit pairs hold 2 tensors");
    let masked = b.xor(&BinShare(r_xor.into_tensor()))?;
    let n = masked.0.len();
    let theirs = exchange(ctx.channel(), "baseline::b2a", masked.0.to_le_bytes(), n * 8)?;
    let theirs = RingTensor::from_le_bytes(b.shape(), &theirs)?;
    let p0 = ctx.id == PartyId::P0;
    let out = masked
        .0
        .as_slice()
        .iter()
        .zip(theirs.as_slice())
        .zip(r_add.tensor().as_slice())
        .map(|((&m, &t), &r)| {
            let z = (m ^ t) & 1;
            // b = z + r − 2zr: r when z = 0, 1 − r when z = 1.
            let v = if z == 1 { r.wrapping_neg() } else { r };
            if p0 { v.wrapping_add(z) } else { v }
        })
        .collect();
    Ok(Share::new(RingTensor::from_vec(b.shape(), out)?))
}

/// Dealer: the bit pairs of one [`b2a_bits`] of `bits`-bit values of `shape`.
///
/// # Errors
/// As [`gen_and`].
pub fn gen_b2a_bits(dealer: &mut Dealer, shape: &[usize], bits: u32) -> Result<()> {
    gen_b2a_bit(dealer, &bit_shape(shape, bits))
}

fn bit_shape(shape: &[usize], bits: u32) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.push(bits as usize);
    s
}

/// Party: the arithmetic share of the `bits`-bit value in each word, bit by bit in one round
/// (8·bits bytes per element), as CrypTen's `_B2A`.
///
/// # Errors
/// As [`b2a_bit`].
pub fn b2a_bits<C: Channel>(ctx: &mut PartyCtx<C>, x: &BinShare, bits: u32) -> Result<Share> {
    let spread: Vec<u64> =
        x.0.as_slice().iter().flat_map(|&v| (0..bits).map(move |i| (v >> i) & 1)).collect();
    let spread = BinShare(RingTensor::from_vec(&bit_shape(x.shape(), bits), spread)?);
    let arith = b2a_bit(ctx, &spread)?;
    let out = arith
        .tensor()
        .as_slice()
        .chunks_exact(bits as usize)
        .map(|b| b.iter().enumerate().fold(0u64, |acc, (i, &v)| acc.wrapping_add(v << i)))
        .collect();
    Ok(Share::new(RingTensor::from_vec(x.shape(), out)?))
}

/// Dealer: material for one [`ltz`] of a tensor of `shape`.
///
/// # Errors
/// As [`gen_and`].
pub fn gen_ltz(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    gen_add(dealer, shape)?;
    gen_b2a_bit(dealer, shape)
}

/// Party: the arithmetic share of \[x < 0\] (an integer bit, not fixed point): 8 rounds, 216
/// bytes per element per party.
///
/// # Errors
/// As [`and_many`].
pub fn ltz<C: Channel>(ctx: &mut PartyCtx<C>, x: &Share) -> Result<Share> {
    let (a, b) = a2b_operands(ctx.id, x);
    let sum = add(ctx, &a, &b)?;
    b2a_bit(ctx, &sum.shr(BITS - 1))
}

/// Dealer: XOR shares of uniformly random 16-bit values of `shape` and the bit pairs that
/// convert them ([`rand`](fn@rand)).
///
/// # Errors
/// As [`gen_and`].
pub fn gen_rand(dealer: &mut Dealer, shape: &[usize]) -> Result<()> {
    check_shape("baseline::gen_rand", shape)?;
    let u = RingTensor::random(shape, dealer.rng()).map(|v| v & 0xffff);
    dealer.deal_mixed(MaterialKind::XorRandom, shape, vec![(u, Sharing::Xor)])?;
    gen_b2a_bits(dealer, shape, 16)
}

/// Party: shares of uniform values in [0, 1) at 16 fractional bits, made as CrypTen's
/// `crypten.rand` makes them: random binary shares converted bit by bit (one round, 128 bytes
/// per element).
///
/// # Errors
/// As [`b2a_bit`].
pub fn rand<C: Channel>(ctx: &mut PartyCtx<C>, shape: &[usize]) -> Result<Share> {
    let [u]: [Share; 1] = ctx
        .preproc
        .take(MaterialKind::XorRandom, shape)?
        .try_into()
        .expect("random binary shares hold 1 tensor");
    b2a_bits(ctx, &BinShare(u.into_tensor()), 16)
}
