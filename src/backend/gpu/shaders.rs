//! The WGSL sources, one file per kernel family in `shaders/`, embedded at build time and
//! registered here. Helper files (`u64.wgsl`, `aes.wgsl`) are prepended to the kernels that use
//! them (WGSL has no includes).

/// Every compute shader prifft runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderId {
    /// DCF and DPF batch evaluation, lookup tables and full-domain DPF (`dcf_eval`, `dpf_eval`,
    /// `lut_eval`), with the given AES table layout and workgroup size.
    FssEval(FssShape),
    /// Z_2^64 elementwise ops, share truncation and the limb matmul (`elementwise`, `matmul`).
    Ring,
    /// The matmul with native 64-bit integers (`matmul`; needs SHADER_INT64).
    RingInt64,
}

const U64: &str = include_str!("../../../shaders/u64.wgsl");
const AES: &str = include_str!("../../../shaders/aes.wgsl");
const FSS_EVAL: &str = include_str!("../../../shaders/fss_eval.wgsl");
const RING: &str = include_str!("../../../shaders/ring.wgsl");
const RING_INT64: &str = include_str!("../../../shaders/ring_int64.wgsl");

/// How many interleaved copies of the AES T-table (1 KiB each) every workgroup of the FSS
/// kernels keeps in shared memory (see `shaders/aes.wgsl`): with 32, each invocation of a
/// 32-wide warp reads its own bank and table lookups never conflict. Every layout gives the same
/// bits; they differ only in speed and in the workgroup memory they need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum AesTables {
    /// One shared table (1 KiB): lookups of a warp conflict ~3.5-way on 32 banks.
    One,
    /// 16 copies (16 KiB, fits WebGPU's guaranteed workgroup memory): at most 2-way conflicts.
    Sixteen,
    /// 32 copies (32 KiB): conflict-free on 32-bank shared memory (NVIDIA, AMD, lavapipe).
    ThirtyTwo,
}

impl AesTables {
    /// Every layout, fewest copies first.
    pub const ALL: [AesTables; 3] = [AesTables::One, AesTables::Sixteen, AesTables::ThirtyTwo];

    /// log2 of the number of copies (`AES_COPY_BITS` in the shader).
    pub fn copy_bits(self) -> u32 {
        match self {
            AesTables::One => 0,
            AesTables::Sixteen => 4,
            AesTables::ThirtyTwo => 5,
        }
    }

    /// Copies of the table.
    pub fn copies(self) -> u32 {
        1 << self.copy_bits()
    }

    /// Workgroup memory the tables take, bytes.
    pub fn workgroup_bytes(self) -> u32 {
        1024 * self.copies()
    }

    /// The layout with the most copies that fits `limit` bytes of workgroup memory (every
    /// WebGPU adapter offers at least 16 KiB).
    pub fn fitting(limit: u32) -> AesTables {
        AesTables::ALL
            .into_iter()
            .rev()
            .find(|t| t.workgroup_bytes() <= limit)
            .unwrap_or(AesTables::One)
    }

    /// The layout with `copies` copies (1, 16 or 32).
    pub fn with_copies(copies: u32) -> Option<AesTables> {
        AesTables::ALL.into_iter().find(|t| t.copies() == copies)
    }
}

/// How the FSS kernels are laid out on the device: the AES table copies per workgroup and the
/// invocations per workgroup (one key per invocation). Every shape gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FssShape {
    /// Copies of the AES T-table in workgroup memory.
    pub tables: AesTables,
    /// Invocations per workgroup: a power of two from 32 to 1024.
    pub workgroup: u32,
}

impl FssShape {
    /// The default: 16 table copies (16 KiB, every adapter) and 256 invocations. Measured on an
    /// H200 (`prifft bench gpu --sweep`, docs/results/bench_gpu_h200_sweep.json), 64-bit DCF:
    /// 5.2 ns per key, against 7.7 with one table; 32 copies (conflict-free) measure the same at
    /// 256 invocations and 15.1 ns at 64, where 32 KiB per workgroup leaves too few warps per SM.
    pub const DEFAULT: FssShape = FssShape { tables: AesTables::Sixteen, workgroup: 256 };

    /// Workgroup sizes `prifft bench gpu --sweep` tries.
    pub const WORKGROUPS: [u32; 3] = [64, 256, 1024];

    /// Whether `workgroup` is a valid size (a power of two from 32 to 1024).
    pub fn valid_workgroup(workgroup: u32) -> bool {
        workgroup.is_power_of_two() && (32..=1024).contains(&workgroup)
    }
}

impl ShaderId {
    /// All shaders, the FSS module in each table layout at the default workgroup size.
    pub const ALL: [ShaderId; 5] = [
        ShaderId::FssEval(FssShape { tables: AesTables::One, workgroup: 256 }),
        ShaderId::FssEval(FssShape { tables: AesTables::Sixteen, workgroup: 256 }),
        ShaderId::FssEval(FssShape { tables: AesTables::ThirtyTwo, workgroup: 256 }),
        ShaderId::Ring,
        ShaderId::RingInt64,
    ];

    /// The complete WGSL module.
    pub fn source(self) -> String {
        match self {
            ShaderId::FssEval(shape) => {
                let consts = format!(
                    "const AES_COPY_BITS: u32 = {}u;\nconst WORKGROUP: u32 = {}u;\n",
                    shape.tables.copy_bits(),
                    shape.workgroup
                );
                [&consts, U64, AES, FSS_EVAL].concat()
            }
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
            ShaderId::FssEval(_) => "prifft fss_eval",
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
    fn the_fss_module_validates_at_every_workgroup_size() {
        for workgroup in FssShape::WORKGROUPS {
            let id = ShaderId::FssEval(FssShape { tables: AesTables::Sixteen, workgroup });
            validate(&id.source(), false).unwrap_or_else(|e| panic!("{workgroup}:\n{e}"));
        }
        assert!(FssShape::valid_workgroup(32) && FssShape::valid_workgroup(1024));
        assert!(!FssShape::valid_workgroup(0) && !FssShape::valid_workgroup(96));
        assert!(!FssShape::valid_workgroup(2048));
    }

    #[test]
    fn table_layouts_fit_the_workgroup_memory_they_are_chosen_for() {
        assert_eq!(AesTables::fitting(16 << 10), AesTables::Sixteen);
        assert_eq!(AesTables::fitting(48 << 10), AesTables::ThirtyTwo);
        assert_eq!(AesTables::fitting(4 << 10), AesTables::One);
        for t in AesTables::ALL {
            assert_eq!(AesTables::with_copies(t.copies()), Some(t));
        }
        assert_eq!(AesTables::with_copies(8), None);
    }

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
