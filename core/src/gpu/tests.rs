//! Tests that need no adapter: every shader validates with naga (alone, and spliced with the
//! subgroup reduction), and the small pure helpers. Kernels against the CPU run on a real
//! adapter in `tests/tests/gpu_matvec.rs`.

use super::rows_per_piece;
use super::shaders::{self, ALL, MATVEC_TYPES, REDUCE_MARKER};
use wgpu::naga;

/// Parses and validates `src` with every capability wgpu could grant, as the device would.
fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .subgroup_stages(naga::valid::ShaderStages::all())
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(src)));
}

#[test]
fn every_shader_validates_alone() {
    for (name, src) in ALL {
        validate(name, src);
    }
}

#[test]
fn every_matvec_kernel_validates_with_the_subgroup_reduction() {
    for ty in MATVEC_TYPES {
        let stem = shaders::matvec_stem(ty).expect("has a kernel");
        let src =
            shaders::source(&format!("{stem}.wgsl")).unwrap_or_else(|| panic!("{stem}.wgsl is not in ALL"));
        let spliced = shaders::splice_reduce(src, false)
            .unwrap_or_else(|| panic!("{stem}.wgsl lacks `{REDUCE_MARKER}`"));
        let for_browser = shaders::splice_reduce(src, true).expect("marker");
        assert_eq!(for_browser.strip_prefix("enable subgroups;\n"), Some(spliced.as_str()), "{stem}");
        assert!(
            spliced.contains("subgroupAdd") && !src.contains("subgroupAdd"),
            "{stem}: splice did not swap the reduction"
        );
        validate(&format!("{stem}_sg"), &spliced);
    }
}

/// The portable reduction is copied into every kernel (so each file stands alone); the copies
/// must not drift apart.
#[test]
fn matvec_kernels_share_one_tree_reduction_and_geometry() {
    let tail = |src: &'static str| &src[src.find(REDUCE_MARKER).expect("marker")..];
    let first = shaders::source("matvec_f32.wgsl").expect("f32 kernel");
    for ty in MATVEC_TYPES {
        let name = format!("{}.wgsl", shaders::matvec_stem(ty).expect("kernel"));
        let src = shaders::source(&name).expect("in ALL");
        assert_eq!(tail(src), tail(first), "{name}'s reduce section differs from matvec_f32.wgsl's");
        let rows = shaders::const_u32(src, "ROWS").unwrap_or_else(|| panic!("{name}: no const ROWS"));
        let wg = shaders::const_u32(src, "WG").unwrap_or_else(|| panic!("{name}: no const WG"));
        // The tree halves WG down to 1; both reductions hand row r's total to invocation r.
        assert!(wg.is_power_of_two() && (rows..=256).contains(&wg), "{name}: WG {wg}, ROWS {rows}");
    }
}

#[test]
fn const_u32_reads_only_exact_declarations() {
    let src = "const WG: u32 = 256u;\nconst ROWS: u32 = 4u; // x\nconst TPB: u32 = 16u;\n";
    assert_eq!(shaders::const_u32(src, "WG"), Some(256));
    assert_eq!(shaders::const_u32(src, "ROWS"), None, "trailing comment is not matched");
    assert_eq!(shaders::const_u32(src, "TPB"), Some(16));
    assert_eq!(shaders::const_u32(src, "X"), None);
}

#[test]
fn pieces_hold_whole_rows_within_the_padded_limit() {
    for (row_bytes, max) in
        [(144u64, 1024u64), (18, 1024), (210, 4096), (4096 * 4, 128 << 20), (7, 16), (5, 4)]
    {
        let n = rows_per_piece(row_bytes, max);
        assert!(
            (n * row_bytes).next_multiple_of(4) <= max,
            "{row_bytes} B rows, limit {max}: {n} rows overflow"
        );
        assert!(
            ((n + 1) * row_bytes).next_multiple_of(4) > max,
            "{row_bytes} B rows, limit {max}: {n} is not the most"
        );
    }
    assert_eq!(rows_per_piece(2000, 1024), 0);
    assert_eq!(rows_per_piece(0, 1024), 0);
}
