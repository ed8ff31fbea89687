//! Ground types every layer may use: which computing party.
//!
//! This module sits at the bottom of the layer diagram ([crate docs](crate)): it imports nothing
//! from the crate.

use std::fmt;

/// Which computing party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PartyId {
    /// The server (model owner).
    P0,
    /// The client (data owner).
    P1,
}

impl PartyId {
    /// 0 or 1.
    pub fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
        }
    }

    /// The other party.
    pub fn peer(self) -> PartyId {
        match self {
            PartyId::P0 => PartyId::P1,
            PartyId::P1 => PartyId::P0,
        }
    }

    /// From 0 or 1.
    pub fn from_index(i: usize) -> Option<PartyId> {
        match i {
            0 => Some(PartyId::P0),
            1 => Some(PartyId::P1),
            _ => None,
        }
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartyId::P0 => "P0 (server)",
            PartyId::P1 => "P1 (client)",
        })
    }
}
