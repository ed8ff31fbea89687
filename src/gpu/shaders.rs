//! The WGSL sources, one file per kernel family in `shaders/`, embedded at build time and
//! registered here. Helper files (`u64.wgsl`, `aes.wgsl`) are prepended to the kernels that use
//! them (WGSL has no includes).

/// Every compute shader prifft runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderId {
    /// DCF and DPF batch evaluation (`dcf_eval`, `dpf_eval`).
    FssEval,
    /// Z_2^64 elementwise ops, share truncation and the limb matmul (`elementwise`, `matmul`).
    Ring,
    /// The matmul with native 64-bit integers (`matmul`; needs SHADER_INT64).
    RingInt64,
}

const U64: &str = include_str!("../../shaders/u64.wgsl");
const AES: &str = include_str!("../../shaders/aes.wgsl");
const FSS_EVAL: &str = include_str!("../../shaders/fss_eval.wgsl");
const RING: &str = include_str!("../../shaders/ring.wgsl");
const RING_INT64: &str = include_str!("../../shaders/ring_int64.wgsl");

impl ShaderId {
    /// All shaders.
    pub const ALL: [ShaderId; 3] = [ShaderId::FssEval, ShaderId::Ring, ShaderId::RingInt64];

    /// The complete WGSL module.
    pub fn source(self) -> String {
        match self {
            ShaderId::FssEval => [U64, AES, FSS_EVAL].concat(),
            ShaderId::Ring => [U64, RING].concat(),
            ShaderId::RingInt64 => RING_INT64.to_string(),
        }
    }

    /// Whether the module needs native 64-bit integers.
    pub fn needs_int64(self) -> bool {
        self == ShaderId::RingInt64
    }

    /// A label for GPU debuggers and errors.
    pub fn label(self) -> &'static str {
        match self {
            ShaderId::FssEval => "prifft fss_eval",
            ShaderId::Ring => "prifft ring",
            ShaderId::RingInt64 => "prifft ring_int64",
        }
    }
}

/// Parse and validate a WGSL module with naga (no device needed).
///
/// # Errors
/// The parse or validation error, rendered with the source location.
pub fn validate(source: &str, int64: bool) -> Result<(), String> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut caps = naga::valid::Capabilities::default();
    if int64 {
        caps |= naga::valid::Capabilities::SHADER_INT64;
    }
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .map(|_| ())
        .map_err(|e| e.emit_to_string(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shader_parses_and_validates() {
        for id in ShaderId::ALL {
            validate(&id.source(), id.needs_int64()).unwrap_or_else(|e| panic!("{id:?}:\n{e}"));
            if id.needs_int64() {
                assert!(validate(&id.source(), false).is_err(), "{id:?} must need SHADER_INT64");
            }
        }
    }
}
