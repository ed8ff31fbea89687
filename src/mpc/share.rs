//! One party's additive share of a tensor.

use super::error::{MpcError as Error, Result};
use crate::ring::RingTensor;

use super::PartyId;

/// One party's additive share ⟨x⟩_b of a secret tensor x = ⟨x⟩_0 + ⟨x⟩_1 (mod 2^64). Linear
/// operations are local and free; a share alone is uniformly random and reveals nothing.
///
/// Prints only its shape (`Share { shape: [2, 3], .. }`); its tensor is zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Share(RingTensor);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share").field("shape", &self.shape()).finish_non_exhaustive()
    }
}

impl Share {
    /// Treat `tensor` as a share.
    pub fn new(tensor: RingTensor) -> Self {
        Self(tensor)
    }

    /// The share's elements.
    pub fn tensor(&self) -> &RingTensor {
        &self.0
    }

    /// Consume into the tensor.
    pub fn into_tensor(self) -> RingTensor {
        self.0
    }

    /// Shape of the shared tensor.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// ⟨x + y⟩.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when shapes differ.
    pub fn add(&self, other: &Share) -> Result<Share> {
        Ok(Share(self.0.add(&other.0)?))
    }

    /// ⟨x − y⟩.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when shapes differ.
    pub fn sub(&self, other: &Share) -> Result<Share> {
        Ok(Share(self.0.sub(&other.0)?))
    }

    /// ⟨c·x⟩ for a public ring constant c.
    pub fn scale(&self, c: u64) -> Share {
        Share(self.0.scale(c))
    }

    /// ⟨x + p⟩ for a public tensor p: only P0 adds it.
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when shapes differ.
    pub fn add_public(&self, party: PartyId, public: &RingTensor) -> Result<Share> {
        if self.shape() != public.shape() {
            return Err(Error::Shape {
                op: "add_public",
                left: self.shape().to_vec(),
                right: public.shape().to_vec(),
            });
        }
        match party {
            PartyId::P0 => Ok(Share(self.0.add(public)?)),
            PartyId::P1 => Ok(self.clone()),
        }
    }
}
