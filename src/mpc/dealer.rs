//! The offline dealer: makes both parties' correlated randomness.
//!
//! The dealer is trusted to generate input-independent randomness honestly and to give each
//! party only its half (the trusted-first-party model of CrypTen, SIGMA and Orca). It never sees
//! inputs. Its randomness comes from an OS-seeded ChaCha20 CSPRNG.

use rand::Rng;

use super::error::Result;
use crate::prg::{ChaCha20Rng, insecure_seeded_rng, os_rng};
use crate::ring::RingTensor;

use super::gates::material::FssMaterial;
use super::preproc::{Material, MaterialId, MaterialKind, Payload};
use super::{PartyId, Preproc};

/// How a dealt secret is split between the parties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// x = x0 + x1 mod 2^64.
    Additive,
    /// x = x0 XOR x1.
    Xor,
}

/// Generates correlated randomness into two per-party stores.
pub struct Dealer {
    rng: ChaCha20Rng,
    stores: [Preproc; 2],
}

impl Default for Dealer {
    fn default() -> Self {
        Self::new()
    }
}

impl Dealer {
    /// A dealer seeded from the operating system.
    pub fn new() -> Self {
        Self::with_rng(os_rng())
    }

    /// **Insecure**: a dealer with a public seed, for reproducible tests only — anyone who knows
    /// the seed knows every party's material.
    pub fn insecure_with_seed(seed: u64) -> Self {
        Self::with_rng(insecure_seeded_rng(seed))
    }

    fn with_rng(mut rng: ChaCha20Rng) -> Self {
        let bundle: [u8; 16] = rng.random();
        Self { rng, stores: [Preproc::new(PartyId::P0, bundle), Preproc::new(PartyId::P1, bundle)] }
    }

    /// The dealer's CSPRNG.
    pub(crate) fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// Share each secret tensor and file the halves as one item of `kind` under a fresh id.
    pub(crate) fn deal(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
        secrets: Vec<RingTensor>,
    ) -> Result<()> {
        let id = MaterialId(self.rng.random());
        self.deal_with_id(kind, dims, secrets, id)
    }

    /// Share each secret tensor by `how` (additively or XOR) and file the halves as one item of
    /// `kind` under a fresh id (binary material of the CrypTen-style baseline).
    pub(crate) fn deal_mixed(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
        secrets: Vec<(RingTensor, Sharing)>,
    ) -> Result<()> {
        let (mut half0, mut half1) = (Vec::new(), Vec::new());
        for (secret, how) in secrets {
            let r = RingTensor::random(secret.shape(), &mut self.rng);
            let s0 = match how {
                Sharing::Additive => secret.sub(&r)?,
                Sharing::Xor => {
                    let v = secret.as_slice().iter().zip(r.as_slice()).map(|(a, b)| a ^ b);
                    RingTensor::from_vec(secret.shape(), v.collect())?
                }
            };
            half0.push(s0);
            half1.push(r);
        }
        let id = MaterialId(self.rng.random());
        self.deal_halves_with_id(kind, dims, [half0, half1], id)
    }

    /// As [`Dealer::deal`] under a given id (derived from what the item is bound to).
    pub(crate) fn deal_with_id(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
        secrets: Vec<RingTensor>,
        id: MaterialId,
    ) -> Result<()> {
        let (mut half0, mut half1) = (Vec::new(), Vec::new());
        for secret in secrets {
            let [s0, s1] = super::sharing::share_secret(&secret, &mut self.rng);
            half0.push(s0.into_tensor());
            half1.push(s1.into_tensor());
        }
        for (store, tensors) in self.stores.iter_mut().zip([half0, half1]) {
            let payload = Payload::Tensors(tensors);
            store.push(Material { id, kind, dims: dims.to_vec(), payload })?;
        }
        Ok(())
    }

    /// File an item whose two halves the caller made (index 0 is P0's), under `id`: for items
    /// with a public part both parties get, such as a dealer-chosen value in masked form.
    pub(crate) fn deal_halves_with_id(
        &mut self,
        kind: MaterialKind,
        dims: &[usize],
        halves: [Vec<RingTensor>; 2],
        id: MaterialId,
    ) -> Result<()> {
        for (store, tensors) in self.stores.iter_mut().zip(halves) {
            let payload = Payload::Tensors(tensors);
            store.push(Material { id, kind, dims: dims.to_vec(), payload })?;
        }
        Ok(())
    }

    /// File both halves of FSS material (index 0 is P0's) as one item under a fresh id.
    pub(crate) fn deal_fss(&mut self, halves: [FssMaterial; 2]) -> Result<()> {
        let id = MaterialId(self.rng.random());
        self.deal_fss_with_id(halves, id)
    }

    /// As [`Dealer::deal_fss`] under a given id (derived from what the item is bound to).
    pub(crate) fn deal_fss_with_id(
        &mut self,
        halves: [FssMaterial; 2],
        id: MaterialId,
    ) -> Result<()> {
        for (store, keys) in self.stores.iter_mut().zip(halves) {
            let (kind, dims) = (keys.kind(), keys.dims());
            store.push(Material { id, kind, dims, payload: Payload::Fss(Box::new(keys)) })?;
        }
        Ok(())
    }

    /// Hand out the two stores: index 0 for P0, 1 for P1.
    pub fn finish(self) -> [Preproc; 2] {
        self.stores
    }

    /// Hand out what was dealt since the last flush (or the start) as one chunk per party
    /// (index 0 for P0), both labelled with a fresh bundle id, and go on with empty stores: a
    /// dealer that flushes after each layer or step holds one chunk at a time
    /// ([`stream`](super::stream)). Ids dealt before are still refused.
    pub fn flush(&mut self) -> [Preproc; 2] {
        let bundle: [u8; 16] = self.rng.random();
        [self.stores[0].split_off(bundle), self.stores[1].split_off(bundle)]
    }
}
