//! Function secret sharing: DPF and DCF keys, batched evaluation, and gates.
pub mod aes;
