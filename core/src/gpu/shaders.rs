//! The WGSL sources, compiled into the crate from `shaders/` (one kernel per file, each valid
//! WGSL on its own), and the one splice step.
//!
//! Splice: every mat-vec kernel ends with a `// ---- reduce` section, the portable row reduction
//! through workgroup memory. When the device has subgroups, [`splice_reduce`] keeps the kernel up
//! to that line and appends the same section of `reduce_subgroup.wgsl`; for the browser it also
//! puts `enable subgroups;` first (WGSL requires it; naga in wgpu 30 rejects it and keys subgroup
//! built-ins off the device's features). Nothing else is ever rewritten.

use crate::quant::GgmlType;

/// Every shader file, by name. A test validates each with naga, alone and spliced.
pub const ALL: &[(&str, &str)] = &[
    ("reduce_subgroup.wgsl", REDUCE_SUBGROUP),
    ("matvec_f32.wgsl", include_str!("../../../shaders/matvec_f32.wgsl")),
    ("matvec_f16.wgsl", include_str!("../../../shaders/matvec_f16.wgsl")),
    ("matvec_bf16.wgsl", include_str!("../../../shaders/matvec_bf16.wgsl")),
    ("matvec_q4_0.wgsl", include_str!("../../../shaders/matvec_q4_0.wgsl")),
    ("matvec_q4_1.wgsl", include_str!("../../../shaders/matvec_q4_1.wgsl")),
    ("matvec_q5_0.wgsl", include_str!("../../../shaders/matvec_q5_0.wgsl")),
    ("matvec_q5_1.wgsl", include_str!("../../../shaders/matvec_q5_1.wgsl")),
    ("matvec_q8_0.wgsl", include_str!("../../../shaders/matvec_q8_0.wgsl")),
    ("matvec_q2_k.wgsl", include_str!("../../../shaders/matvec_q2_k.wgsl")),
    ("matvec_q3_k.wgsl", include_str!("../../../shaders/matvec_q3_k.wgsl")),
    ("matvec_q4_k.wgsl", include_str!("../../../shaders/matvec_q4_k.wgsl")),
    ("matvec_q5_k.wgsl", include_str!("../../../shaders/matvec_q5_k.wgsl")),
    ("matvec_q6_k.wgsl", include_str!("../../../shaders/matvec_q6_k.wgsl")),
];

const REDUCE_SUBGROUP: &str = include_str!("../../../shaders/reduce_subgroup.wgsl");

/// The line that starts the replaceable reduction section.
pub const REDUCE_MARKER: &str = "// ---- reduce";

/// The tensor types with a mat-vec kernel.
pub const MATVEC_TYPES: [GgmlType; 13] = {
    use GgmlType::*;
    [F32, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K]
};

/// The file stem of `ty`'s mat-vec kernel (`matvec_q4_k`), if it has one.
pub fn matvec_stem(ty: GgmlType) -> Option<String> {
    MATVEC_TYPES.contains(&ty).then(|| format!("matvec_{}", ty.name().to_ascii_lowercase()))
}

/// The source of shader file `name` (`matvec_q4_k.wgsl`).
pub fn source(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// `kernel` with its reduction section swapped for the subgroup one, after `enable subgroups;`
/// when `enable` (the browser backend); `None` if either file lacks the marker.
pub fn splice_reduce(kernel: &str, enable: bool) -> Option<String> {
    let head = &kernel[..section_start(kernel)?];
    let tail = &REDUCE_SUBGROUP[section_start(REDUCE_SUBGROUP)?..];
    let directive = if enable { "enable subgroups;\n" } else { "" };
    Some(format!("{directive}{head}{tail}"))
}

/// Byte offset of the line that begins with the reduce marker.
fn section_start(src: &str) -> Option<usize> {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        if line.starts_with(REDUCE_MARKER) {
            return Some(at);
        }
        at += line.len();
    }
    None
}

/// The value of `const NAME: u32 = Nu;` in `src`: the launchers read workgroup geometry from the
/// kernel itself so the two cannot disagree.
pub fn const_u32(src: &str, name: &str) -> Option<u32> {
    let prefix = format!("const {name}: u32 = ");
    src.lines().find_map(|l| l.strip_prefix(&prefix)?.strip_suffix("u;")?.parse().ok())
}
