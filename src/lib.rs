//! # prifft
//!
//! A Rust engine for privacy-preserving federated learning.
//!
//! 1. **Secure federated fine-tuning** (after the PriFFT paper): a model owner (server, P0) and a
//!    data owner (client, P1) compute on additive secret shares over Z_2^64; linear work uses
//!    Beaver triples and masked products, nonlinear work uses function secret sharing (FSS) keys
//!    from an offline dealer.
//! 2. **FedProc**: prototypical contrastive federated learning for non-IID clients.
//!
//! Heavy kernels run as WGSL compute shaders through wgpu (feature `gpu`, default on,
//! [`backend::gpu`]) with a CPU path that gives the same bits.
//!
//! ## Security model
//!
//! Semi-honest, two non-colluding computing parties; a trusted dealer generates
//! input-independent correlated randomness offline (as CrypTen's trusted first party, SIGMA and
//! Orca). All randomness for keys, masks and shares comes from an OS-seeded ChaCha20 CSPRNG
//! ([`prg`]); seeded constructors exist only for tests and say "insecure" in their names. Each
//! protocol's docs state its cost and what each party learns.
//!
//! ## Layers
//!
//! Dependencies point down only (checked by `tests/layers.rs`); each layer has its own error
//! type, and [`error`] flattens them all into the crate's [`Error`]:
//!
//! ```text
//! cli (the binary: one module per subcommand)
//!  └─ finetune (secure fine-tuning: parties, dealer stream, helper, the run's costs)
//!      └─ nn (secure BERT layers on shares, the embedding PIR, the CrypTen-style step)
//!         · session (two-process runs) · fl (federated learning)
//!      └─ model (the pretrained BERT, sentences, the plaintext f32 reference on candle)
//!          └─ error (the crate's Error)
//!              └─ mpc (party context, sharing, dealer, typed preprocessing, Beaver, truncation,
//!                  │    gates: open x + r, evaluate on the backend)
//!                  └─ backend (Backend trait, Cpu, Scheduler, gpu/: the wgpu engine)
//!                      └─ fss (AES PRG, DPF, DCF, key batches) · net (channels)
//!                          └─ ring (Z_2^64, fixed point, tensors)
//!                              └─ party (PartyId) · prg (OS-seeded ChaCha20)
//! ```
//!
//! A protocol takes a [`mpc::PartyCtx`] — party id, metered channel, preprocessing store, local
//! CSPRNG and the [`backend::Backend`] its local work runs on — so the same protocol code runs
//! on the CPU, a GPU or the scheduler over every device, with the same bits.
//!
//! ## Example: a secure fixed-point product in two threads
//!
//! ```
//! use prifft::mpc::{beaver, local, sharing, trunc, Dealer, Share};
//! use prifft::ring::{FixedPoint, RingTensor};
//!
//! let fx = FixedPoint::default();
//! let x = RingTensor::from_vec(&[2], fx.encode_slice(&[1.5, -2.0])?)?;
//! let y = RingTensor::from_vec(&[2], fx.encode_slice(&[4.0, 0.25])?)?;
//!
//! // Offline: the dealer makes one Beaver triple for a product of two 2-element tensors.
//! let mut dealer = Dealer::new();
//! beaver::gen_mul(&mut dealer, &[2])?;
//!
//! // Shares of the inputs (in a real run each owner shares its own input).
//! let [x0, x1] = sharing::share_secret(&x, &mut prifft::prg::os_rng());
//! let [y0, y1] = sharing::share_secret(&y, &mut prifft::prg::os_rng());
//!
//! let f = fx.frac_bits();
//! let run = local::run_two_party(
//!     dealer.finish(),
//!     |ctx| Ok(trunc::trunc_local(ctx.id, &beaver::mul(ctx, &x0, &y0)?, f)),
//!     |ctx| Ok(trunc::trunc_local(ctx.id, &beaver::mul(ctx, &x1, &y1)?, f)),
//! )?;
//! let z = sharing::reconstruct(&run.out0, &run.out1)?;
//! let z = fx.decode_slice(z.as_slice());
//! assert!((z[0] - 6.0).abs() <= fx.ulp() && (z[1] + 0.5).abs() <= fx.ulp());
//! assert_eq!(run.costs[0].bytes_sent, 2 * 8 * 2); // 16 bytes per element
//! # Ok::<(), prifft::Error>(())
//! ```

#![warn(missing_docs)]

pub mod assets;
pub mod backend;
pub mod error;
pub mod finetune;
pub mod fl;
pub mod fss;
pub mod model;
pub mod mpc;
pub mod net;
pub mod nn;
pub mod party;
pub mod prg;
pub mod ring;
pub mod session;

pub use error::{Error, Result};
