//! The secure embedding lookup: the client's token ids meet the server's 30,522 × 384 word
//! table without either learning the other's secret.
//!
//! This is the one place where a client input selects from a large secret table. It is a
//! 1-out-of-V oblivious transfer of a row: whatever the design, someone does vocabulary-wide
//! work per token. prifft makes it a **two-server PIR** whose second server is the dealer
//! (the helper H), which the security model already trusts not to collude:
//!
//! - *Setup, once per run.* The server P0 draws seeds σ (the table mask B = PRG(σ), V × d) and
//!   σ′ (re-randomisation), sends Ê = E + B to the client P1 (8·V·d bytes once: 94 MB for
//!   MiniLM) and σ, σ′ to H (64 bytes).
//! - *Per token.* P1 makes a DPF key pair (k₀, k₁) for the point t (payload 1) — the keys hide
//!   t — and sends k₀ to P0 and k₁ to H (16·⌈log₂ V⌉ + 40 bytes each; P1 is the dealer of its
//!   own input here). P0 and H each evaluate their key over the whole vocabulary (2^⌈log₂ V⌉
//!   outputs, s₀ + s₁ = e_t) and multiply by B: zᵢ = sᵢ·B, so z₀ + z₁ = B\[t\]. H returns
//!   z₁ + ρ to P1 (8·d bytes), ρ the next d words of PRG(σ′), which P0 draws too.
//! - *Shares.* P0 holds ρ − z₀, P1 holds Ê\[t\] − (z₁ + ρ); their sum is Ê\[t\] − B\[t\] = E\[t\].
//!
//! **What each party learns.** P0: k₀, which reveals nothing about t (DPF security). H: σ, σ′
//! (random, independent of E) and k₁ (nothing about t). P1: Ê, one-time padded by B, and
//! z₁ + ρ, padded by ρ — without ρ, z₁ = s₁·B would give P1 the linear combination s₁·E of the
//! table's rows for every token. A coalition of H and P1 would learn E, of H and P0 the tokens:
//! the non-colluding-dealer assumption of the whole system.
//!
//! **Cost per token:** P1 → P0 one key (~280 B for V = 30,522), P1 → H one key, H → P1 8·d
//! bytes; P0 and H each one DPF full-domain evaluation (2^15 outputs) and a 2^15 × d product
//! row (12.6 M multiply-adds for MiniLM), on the party's backend (a batched ring matmul). The
//! positions and the token type are public indices: P0 adds their rows to its share. Every
//! token position is a separate query, including padding, so P0 learns neither repetitions nor
//! lengths. With frozen embeddings this is paid once per sentence.

use rand::{Rng, SeedableRng};
use zeroize::Zeroize;

use super::Result;
use crate::backend::Backend;
use crate::fss::{KeyBatch, dpf};
use crate::mpc::{MpcError, Share};
use crate::prg::ChaCha20Rng;
use crate::ring::RingTensor;

/// The width of the DPF domain for a vocabulary of `vocab` tokens.
pub fn domain_bits(vocab: usize) -> u32 {
    (usize::BITS - (vocab.max(2) - 1).leading_zeros()).max(1)
}

/// The seeds P0 shares with the helper. Zeroised on drop; prints nothing.
pub struct TableSeeds {
    mask: [u8; 32],
    rerand: [u8; 32],
}

impl std::fmt::Debug for TableSeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableSeeds(..)")
    }
}

impl Drop for TableSeeds {
    fn drop(&mut self) {
        self.mask.zeroize();
        self.rerand.zeroize();
    }
}

impl TableSeeds {
    /// Fresh seeds from `rng` (P0's OS-seeded CSPRNG).
    pub fn random(rng: &mut ChaCha20Rng) -> TableSeeds {
        TableSeeds { mask: rng.random(), rerand: rng.random() }
    }

    /// As 64 bytes, to send to the helper.
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.mask.as_slice(), self.rerand.as_slice()].concat()
    }

    /// From [`TableSeeds::to_bytes`].
    ///
    /// # Errors
    /// [`crate::Error::Data`] unless 64 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<TableSeeds> {
        if b.len() != 64 {
            return Err(crate::Error::Data(format!(
                "embedding seeds: expected 64 bytes, got {}",
                b.len()
            )));
        }
        Ok(TableSeeds {
            mask: b[..32].try_into().expect("32 bytes"),
            rerand: b[32..].try_into().expect("32 bytes"),
        })
    }

    /// The table mask B, padded with zero rows to 2^⌈log₂ V⌉ rows: [2^n, d].
    fn table_mask(&self, vocab: usize, d: usize) -> Result<RingTensor> {
        let rows = 1usize << domain_bits(vocab);
        let mut rng = ChaCha20Rng::from_seed(self.mask);
        let mut data: Vec<u64> = (0..vocab * d).map(|_| rng.random()).collect();
        data.resize(rows * d, 0);
        Ok(RingTensor::from_vec(&[rows, d], data)?)
    }

    fn rerand_stream(&self) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.rerand)
    }
}

/// P0's side: its table, the mask and the re-randomisation stream.
pub struct Server {
    b: RingTensor,
    rerand: ChaCha20Rng,
    vocab: usize,
    d: usize,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("embedding::Server").field("vocab", &self.vocab).finish_non_exhaustive()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.b.as_mut_slice().zeroize();
    }
}

/// The helper's side (the dealer as the second PIR server): the mask B and the stream.
pub struct Helper(Server);

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("embedding::Helper(..)")
    }
}

fn check_table(table: &RingTensor) -> Result<(usize, usize)> {
    match table.shape() {
        [v, d] if *v > 0 && *d > 0 => Ok((*v, *d)),
        s => Err(crate::Error::Usage(format!("embedding table of shape {s:?}; [V, d] needed"))),
    }
}

impl Server {
    /// P0: set up with its word table `table` ([V, d] at 2^16) and `seeds`; returns the server
    /// and Ê = E + B for the client.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for an empty table.
    pub fn new(table: &RingTensor, seeds: &TableSeeds) -> Result<(Server, RingTensor)> {
        let (vocab, d) = check_table(table)?;
        let b = seeds.table_mask(vocab, d)?;
        let masked: Vec<u64> =
            table.as_slice().iter().zip(b.as_slice()).map(|(&e, &m)| e.wrapping_add(m)).collect();
        let server = Server { b, rerand: seeds.rerand_stream(), vocab, d };
        Ok((server, RingTensor::from_vec(&[vocab, d], masked)?))
    }

    /// s·B for the key batch: [tokens, d].
    fn product(&self, backend: &dyn Backend, keys: &KeyBatch) -> Result<RingTensor> {
        let n = domain_bits(self.vocab);
        if keys.input_bits() != n {
            return Err(MpcError::Param {
                op: "embedding lookup",
                what: format!("keys of {} bits for a vocabulary of {} bits", keys.input_bits(), n),
            }
            .into());
        }
        let t = keys.len();
        let mut s = vec![0u64; t << n];
        dpf::eval_all(keys, &mut s).map_err(MpcError::from)?;
        let mut out = vec![0u64; t * self.d];
        backend.matmul(&s, self.b.as_slice(), (t, 1 << n, self.d), &mut out)?;
        Ok(RingTensor::from_vec(&[t, self.d], out)?)
    }

    fn rho(&mut self, t: usize) -> Result<RingTensor> {
        let data = (0..t * self.d).map(|_| self.rerand.random()).collect();
        Ok(RingTensor::from_vec(&[t, self.d], data)?)
    }

    /// P0: its shares of the rows for the client's key batch `k0`: ρ − s₀·B, [tokens, d].
    ///
    /// # Errors
    /// Keys of another vocabulary or party; backend errors.
    pub fn share(&mut self, backend: &dyn Backend, k0: &KeyBatch) -> Result<Share> {
        let z = self.product(backend, k0)?;
        let rho = self.rho(k0.len())?;
        Ok(Share::new(rho.sub(&z)?))
    }
}

impl Helper {
    /// The helper, from P0's seeds and the table's size.
    ///
    /// # Errors
    /// [`crate::Error::Usage`] for an empty table.
    pub fn new(seeds: &TableSeeds, vocab: usize, d: usize) -> Result<Helper> {
        if vocab == 0 || d == 0 {
            return Err(crate::Error::Usage("empty embedding table".into()));
        }
        let b = seeds.table_mask(vocab, d)?;
        Ok(Helper(Server { b, rerand: seeds.rerand_stream(), vocab, d }))
    }

    /// H: the answer for the client's key batch `k1`: s₁·B + ρ, [tokens, d].
    ///
    /// # Errors
    /// As [`Server::share`].
    pub fn answer(&mut self, backend: &dyn Backend, k1: &KeyBatch) -> Result<RingTensor> {
        let z = self.0.product(backend, k1)?;
        let rho = self.0.rho(k1.len())?;
        Ok(z.add(&rho)?)
    }
}

/// P1: DPF keys for its token ids (payload 1), from its own CSPRNG: (k₀ for P0, k₁ for H).
///
/// # Errors
/// [`crate::Error::Data`] for a token id outside the vocabulary.
pub fn query(ids: &[u32], vocab: usize, rng: &mut ChaCha20Rng) -> Result<[KeyBatch; 2]> {
    if let Some(&t) = ids.iter().find(|&&t| t as usize >= vocab) {
        return Err(crate::Error::Data(format!(
            "token id {t} is outside the vocabulary of {vocab}"
        )));
    }
    let alphas: Vec<u64> = ids.iter().map(|&t| u64::from(t)).collect();
    let betas = vec![1u64; ids.len()];
    Ok(dpf::keygen(domain_bits(vocab), &alphas, &betas, rng).map_err(MpcError::from)?)
}

/// P1: its shares of the rows: Ê\[t\] − answer.
///
/// # Errors
/// Shape errors (an answer of the wrong size).
pub fn client_share(masked_table: &RingTensor, ids: &[u32], answer: &RingTensor) -> Result<Share> {
    let (vocab, d) = check_table(masked_table)?;
    if answer.shape() != [ids.len(), d] {
        return Err(crate::Error::Data(format!(
            "embedding answer of shape {:?}, expected [{}, {d}]",
            answer.shape(),
            ids.len()
        )));
    }
    let mut out = Vec::with_capacity(ids.len() * d);
    for (i, &t) in ids.iter().enumerate() {
        let t = t as usize;
        if t >= vocab {
            return Err(crate::Error::Data(format!("token id {t} outside the vocabulary")));
        }
        let row = &masked_table.as_slice()[t * d..(t + 1) * d];
        let ans = &answer.as_slice()[i * d..(i + 1) * d];
        out.extend(row.iter().zip(ans).map(|(&a, &b)| a.wrapping_sub(b)));
    }
    Ok(Share::new(RingTensor::from_vec(&[ids.len(), d], out)?))
}
