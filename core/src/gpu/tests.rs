//! Tests that need no adapter: every shader validates with naga (alone, or as spliced: mat-vec
//! kernels with both reductions, decoded kernels with every decoder), and the small pure helpers.
//! Kernels against the CPU run on a real adapter in `tests/tests/gpu_*.rs`.

use super::rows_per_piece;
use super::shaders::{self, ALL, DECODED, DECODER_TYPES, MATVEC_TYPES, REDUCE_MARKER};
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
fn every_shader_validates_alone_or_is_spliced() {
    for (name, _) in ALL {
        let decoder = name.starts_with("dequant_") && *name != "dequant_common.wgsl";
        let spliced =
            name.starts_with("matvec_") || DECODED.contains(name) || decoder || shaders::is_included(name);
        assert_eq!(shaders::stands_alone(name), !spliced, "{name}");
    }
    for (name, _) in ALL.iter().filter(|(n, _)| shaders::stands_alone(n)) {
        validate(name, shaders::source(name).expect("in ALL"));
    }
}

/// Every `// include:` line names a file, which includes nothing itself, and the resolved source
/// holds that file's text; the four Q4_K kernels share one copy of the scale unpacking, the two
/// tensor-core matmuls one edge store, the kernels of exact numerics one exact arithmetic.
#[test]
fn every_include_is_put_in() {
    use shaders::INCLUDE_MARKER;
    let mut pairs = Vec::new();
    for (name, raw) in ALL {
        let src = shaders::source(name).expect("in ALL");
        assert!(!src.lines().any(|l| l.starts_with(INCLUDE_MARKER)), "{name}: an include names no file");
        for file in raw.lines().filter_map(|l| l.strip_prefix(INCLUDE_MARKER)).map(str::trim) {
            let text = ALL.iter().find(|(n, _)| *n == file).expect("resolved, so in ALL").1;
            assert!(src.contains(text), "{name}: {file} not put in whole");
            assert!(!text.lines().any(|l| l.starts_with(INCLUDE_MARKER)), "{file} is included and includes");
            assert!(shaders::is_included(file) && !shaders::stands_alone(file), "{file}");
            pairs.push(format!("{name} < {file}"));
        }
    }
    pairs.sort();
    assert_eq!(
        pairs,
        [
            "act_quant.wgsl < exact_fp.wgsl",
            "attn_decode.wgsl < attn_decode_common.wgsl",
            "attn_decode.wgsl < attn_params.wgsl",
            "attn_decode_gqa.wgsl < attn_decode_common.wgsl",
            "attn_decode_gqa.wgsl < attn_params.wgsl",
            "attn_merge.wgsl < attn_params.wgsl",
            "attn_prefill.wgsl < attn_params.wgsl",
            "exact_attention.wgsl < attn_params.wgsl",
            "exact_attention.wgsl < exact_fp.wgsl",
            "exact_matvec.wgsl < exact_fp.wgsl",
            "matmul_coop.wgsl < coop_common.wgsl",
            "matmul_coop_q4_k.wgsl < coop_common.wgsl",
            "matmul_coop_q4_k.wgsl < q4_k_scales.wgsl",
            "matmul_int_q4_k.wgsl < q4_k_scales.wgsl",
            "matvec_multi_q4_k.wgsl < q4_k_scales.wgsl",
            "matvec_q4_k.wgsl < put_rows.wgsl",
            "matvec_q4_k.wgsl < q4_k_scales.wgsl",
            "matvec_q8_0.wgsl < put_rows.wgsl",
            "put_rope.wgsl < rope_angles.wgsl",
            "rope.wgsl < rope_angles.wgsl",
            "rope_kv.wgsl < exact_fp.wgsl",
            "rope_kv.wgsl < rope_angles.wgsl",
        ]
    );
}

/// Each decoder states its block geometry as the CPU side knows it, and every kernel that takes a
/// decoder validates with each one in front.
#[test]
fn every_decoder_matches_its_type_and_every_decoded_kernel_validates_with_each() {
    for ty in DECODER_TYPES {
        let name = format!("{}.wgsl", shaders::dequant_stem(ty).expect("has a decoder"));
        let src = shaders::source(&name).unwrap_or_else(|| panic!("{name} is not in ALL"));
        assert_eq!(shaders::const_u32(src, "BLOCK"), Some(ty.block_size() as u32), "{name}: BLOCK");
        assert_eq!(
            shaders::const_u32(src, "BLOCK_BYTES"),
            Some(ty.type_size() as u32),
            "{name}: BLOCK_BYTES"
        );
        assert!(src.contains("fn dequant4(row_byte: u32, i: u32) -> vec4<f32>"), "{name}: no dequant4");
        validate(&name, &shaders::decoder(ty).expect("decoder"));
        for kernel in DECODED {
            let k = shaders::source(kernel).unwrap_or_else(|| panic!("{kernel} is not in ALL"));
            let spliced = shaders::with_decoder(k, ty).expect("decoder");
            validate(&format!("{kernel} with {name}"), &spliced);
        }
    }
    assert_eq!(shaders::dequant_stem(crate::quant::GgmlType::Q8K), None);
}

#[test]
fn every_matvec_kernel_validates_with_both_reductions() {
    for ty in MATVEC_TYPES {
        let stem = shaders::matvec_stem(ty).expect("has a kernel");
        let name = format!("{stem}.wgsl");
        let src = shaders::source(&name).unwrap_or_else(|| panic!("{name} is not in ALL"));
        assert!(!shaders::stands_alone(&name), "{name}");
        let wg = shaders::splice_reduce(src, false, false)
            .unwrap_or_else(|| panic!("{name} lacks `{REDUCE_MARKER}`"));
        assert_eq!(
            shaders::splice_reduce(src, false, true).as_ref(),
            Some(&wg),
            "{stem}: no directive without subgroups"
        );
        let sg = shaders::splice_reduce(src, true, false).expect("marker");
        let for_browser = shaders::splice_reduce(src, true, true).expect("marker");
        assert_eq!(for_browser.strip_prefix("enable subgroups;\n"), Some(sg.as_str()), "{stem}");
        assert!(
            sg.contains("subgroupAdd") && !wg.contains("subgroupAdd"),
            "{stem}: wrong reductions spliced"
        );
        validate(&format!("{stem}_wg"), &wg);
        validate(&format!("{stem}_sg"), &sg);
    }
}

/// The kernels with a `put` section validate with the rope store swapped in, with both
/// reductions, and the swap leaves the plain store out; Q4_K's and Q8_0's have one (the fused
/// q|k|v mat-vecs of the models that decode most).
#[test]
fn matvec_kernels_with_a_store_section_validate_with_the_rope_store() {
    let rope = shaders::source("put_rope.wgsl").expect("in ALL");
    let mut with = Vec::new();
    for ty in MATVEC_TYPES {
        let stem = shaders::matvec_stem(ty).expect("has a kernel");
        let src = shaders::source(&format!("{stem}.wgsl")).expect("in ALL");
        let Some(swapped) = shaders::swap_section(src, rope, "put") else { continue };
        assert!(swapped.contains("k_cache") && !swapped.contains("y[i] = select(total"), "{stem}");
        for subgroups in [false, true] {
            let spliced = shaders::splice_reduce(&swapped, subgroups, false).expect("marker");
            validate(&format!("{stem}_rope_{subgroups}"), &spliced);
        }
        with.push(stem);
    }
    assert_eq!(with, ["matvec_q8_0", "matvec_q4_k"]);
}

/// The kernels end at the marker (the reduction lives once, in reduce_*.wgsl), and their
/// geometry suits both reductions.
#[test]
fn matvec_kernels_end_at_the_reduce_marker_with_a_geometry_both_reductions_take() {
    for ty in MATVEC_TYPES {
        let name = format!("{}.wgsl", shaders::matvec_stem(ty).expect("kernel"));
        let src = shaders::source(&name).expect("in ALL");
        let last = src.trim_end().lines().last().unwrap_or_default();
        assert!(last.starts_with(REDUCE_MARKER), "{name} must end at `{REDUCE_MARKER}`, ends with `{last}`");
        assert!(
            !src.contains("fn reduce_rows") && !src.contains("struct Lane"),
            "{name} defines its own reduction"
        );
        let rows = shaders::const_u32(src, "ROWS").unwrap_or_else(|| panic!("{name}: no const ROWS"));
        let wg = shaders::override_u32(src, "WG").unwrap_or_else(|| panic!("{name}: no override WG"));
        // The tree halves WG down to 1; both reductions hand row r's total to invocation r; and
        // the invocations sharing a block (TPB) fit in the smaller software workgroup too.
        for wg in [wg, crate::gpu::MATVEC_SOFTWARE_WG] {
            assert!(wg.is_power_of_two() && (rows..=256).contains(&wg), "{name}: WG {wg}, ROWS {rows}");
            if let Some(tpb) = shaders::const_u32(src, "TPB") {
                assert!(wg % tpb == 0, "{name}: WG {wg} is not a multiple of TPB {tpb}");
            }
        }
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

/// Every variant the element-wise launchers build: (base stem, swaps (file, section)).
const ELEMENTWISE_VARIANTS: &[(&str, &[(&str, &str)])] = &[
    ("rmsnorm", &[("rmsnorm_inplace.wgsl", "io")]),
    ("rmsnorm", &[("rmsnorm_sg.wgsl", "reduce")]),
    ("rmsnorm", &[("rmsnorm_inplace.wgsl", "io"), ("rmsnorm_sg.wgsl", "reduce")]),
    ("argmax", &[("argmax_sg.wgsl", "reduce")]),
];

#[test]
fn every_elementwise_variant_validates_spliced() {
    for (stem, swaps) in ELEMENTWISE_VARIANTS {
        let base = shaders::source(&format!("{stem}.wgsl")).expect("in ALL");
        let mut src = base.to_string();
        for (file, section) in *swaps {
            let from = shaders::source(file).unwrap_or_else(|| panic!("{file} is not in ALL"));
            let next = shaders::swap_section(&src, from, section)
                .unwrap_or_else(|| panic!("{stem}: no `{section}` section to swap from {file}"));
            assert_ne!(next, src, "{stem}: swapping `{section}` from {file} changed nothing");
            src = next;
        }
        validate(&format!("{stem} + {swaps:?}"), &src);
    }
}

#[test]
fn swap_section_replaces_exactly_one_section() {
    let kernel = "a\n// ---- io (x)\nold io\n// ---- reduce: tree\nold reduce\n";
    let from = "header\n// ---- io (y)\nnew io\n// ---- reduce\nother\n";
    assert_eq!(
        shaders::swap_section(kernel, from, "io").as_deref(),
        Some("a\n// ---- io (y)\nnew io\n// ---- reduce: tree\nold reduce\n")
    );
    assert_eq!(
        shaders::swap_section(kernel, from, "reduce").as_deref(),
        Some("a\n// ---- io (x)\nold io\n// ---- reduce\nother\n")
    );
    // `// ---- iox` is not section `io`; a missing section is None.
    assert_eq!(shaders::swap_section("// ---- iox\n", from, "io"), None);
    assert_eq!(shaders::swap_section(kernel, "nothing\n", "io"), None);
}

/// Bytes of workgroup memory `src` declares.
fn workgroup_bytes(src: &str) -> u32 {
    let module = naga::front::wgsl::parse_str(src).expect("parses");
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).expect("layout");
    module
        .global_variables
        .iter()
        .filter(|(_, v)| v.space == naga::AddressSpace::WorkGroup)
        .map(|(_, v)| layouter[v.ty].size)
        .sum()
}

/// WebGPU guarantees 16 KiB of workgroup memory (browsers often give no more): every kernel, in
/// every variant, must fit — except the native-only tensor-core matmuls, which must declare
/// exactly what `Gpu::new` checks the adapter for.
#[test]
fn every_kernel_fits_webgpus_workgroup_memory() {
    let mut all: Vec<(String, String)> = ALL
        .iter()
        .filter(|(n, _)| shaders::stands_alone(n))
        .map(|&(n, _)| (n.to_string(), shaders::source(n).expect("in ALL").to_string()))
        .collect();
    for ty in MATVEC_TYPES {
        let stem = shaders::matvec_stem(ty).expect("kernel");
        let src = shaders::source(&format!("{stem}.wgsl")).expect("in ALL");
        for sg in [false, true] {
            all.push((format!("{stem} sg={sg}"), shaders::splice_reduce(src, sg, false).expect("marker")));
        }
        for kernel in shaders::DECODED {
            let src = shaders::source(kernel).expect("in ALL");
            all.push((format!("{kernel} {ty}"), shaders::with_decoder(src, ty).expect("decoder")));
        }
    }
    for (name, src) in all {
        let bytes = workgroup_bytes(&src);
        // The tensor-core matmul is native only (cooperative matrices never reach a browser);
        // `Gpu::new` enables it only where the adapter has the memory it declares.
        if name.starts_with("matmul_coop.wgsl") {
            assert_eq!(bytes as u64, super::context::COOP_WORKGROUP_BYTES as u64, "{name}");
            continue;
        }
        if name.starts_with("matmul_coop_") {
            assert_eq!(bytes as u64, super::context::COOP_TYPED_WORKGROUP_BYTES as u64, "{name}");
            continue;
        }
        if name.starts_with("gemm_coop.wgsl") {
            assert_eq!(bytes as u64, super::context::GEMM_WORKGROUP_BYTES as u64, "{name}");
            continue;
        }
        assert!(bytes <= 16384, "{name}: {bytes} bytes of workgroup memory");
    }
}

/// The mat-vecs over a few tokens: every type's kernel (its own integer one, or the decoded one
/// after its decoder) validates with both reductions at every token-group size built, and fits
/// WebGPU's workgroup memory with the reductions' largest `ROWS`.
#[test]
fn every_multi_token_matvec_validates_with_both_reductions() {
    use super::MULTI_TOKENS;
    for ty in MATVEC_TYPES {
        // Q4_1's mat-vec takes packed levels and has no multi-token kernel yet: its batches go
        // to the matmul.
        let Some((kernel, decoded)) = shaders::matvec_multi_kernel(ty) else {
            assert_eq!(ty, crate::quant::GgmlType::Q4_1, "{ty}: no multi-token kernel");
            continue;
        };
        assert_eq!(decoded, !super::packed_input(ty), "{ty}: integer kernel iff packed input");
        let last = kernel.trim_end().lines().last().unwrap_or_default();
        assert!(last.starts_with(REDUCE_MARKER), "{ty}: multi kernel must end at `{REDUCE_MARKER}`");
        let nt = shaders::const_u32(kernel, "NT").expect("const NT");
        for sg in [false, true] {
            let src = shaders::matvec_multi_source(ty, sg, false).expect("source");
            assert_eq!(sg, src.contains("subgroupAdd"), "{ty} sg={sg}: wrong reduction");
            let browser = shaders::matvec_multi_source(ty, sg, true).expect("source");
            assert_eq!(browser.starts_with("enable subgroups;\n"), sg, "{ty} sg={sg}: directive");
            for t in MULTI_TOKENS {
                let old = format!("const NT: u32 = {nt}u;");
                let src = src.replace(&old, &format!("const NT: u32 = {t}u;"));
                validate(&format!("matvec_multi {ty} sg={sg} nt={t}"), &src);
                let bytes = workgroup_bytes(&src);
                assert!(
                    bytes <= 16384,
                    "matvec_multi {ty} sg={sg} nt={t}: {bytes} bytes of workgroup memory"
                );
            }
        }
    }
}

/// The tiled integer kernels validate at every token tile the launcher builds, declare the
/// workgroup memory `tile_workgroup_bytes` counts, and fit WebGPU's 16 KiB at the smallest tile
/// (the file's own).
#[test]
fn every_tiled_integer_kernel_validates_at_every_tile() {
    use super::{TILE_TOKENS, tile_workgroup_bytes};
    let with_tile = MATVEC_TYPES.iter().filter_map(|&ty| Some((ty, shaders::matmul_int_kernel(ty)?)));
    let mut seen = 0;
    for (ty, kernel) in with_tile {
        seen += 1;
        assert!(super::packed_input(ty), "{ty}: a tiled integer kernel reads packed levels");
        let get =
            |name: &str| shaders::const_u32(kernel, name).unwrap_or_else(|| panic!("{ty}: const {name}"));
        let (rows, tg, tpt) = (get("RG") * get("RPT"), get("TG"), get("TPT"));
        assert!(workgroup_bytes(kernel) <= 16384, "{ty}: the file's own tile must fit WebGPU");
        for bt in TILE_TOKENS {
            assert_eq!(bt % tpt, 0, "{ty}: tile {bt} not a multiple of TPT {tpt}");
            let src = kernel
                .replace(&format!("const TG: u32 = {tg}u;"), &format!("const TG: u32 = {}u;", bt / tpt));
            let name = format!("matmul_int {ty} bt={bt}");
            validate(&name, &src);
            spirv(&name, &src);
            assert_eq!(workgroup_bytes(&src), tile_workgroup_bytes(rows, bt), "{name}");
        }
    }
    assert!(seen > 0, "no tiled integer kernel");
}

/// `src` through naga's SPIR-V writer (what wgpu's Vulkan backend runs): catches what validation
/// lets through and the writer rejects — naga 30's WGSL front end emits no expression made inside
/// a `coopStore(…)` call (`&y[i + 16u]`, `p.stride`), and its SPIR-V writer then panics.
fn spirv(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src).expect("parses");
    let info =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .subgroup_stages(naga::valid::ShaderStages::all())
            .subgroup_operations(naga::valid::SubgroupOperationSet::all())
            .validate(&module)
            .expect("validates");
    let opts = naga::back::spv::Options::default();
    match std::panic::catch_unwind(|| naga::back::spv::write_vec(&module, &info, &opts, None)) {
        Ok(Ok(words)) => assert!(!words.is_empty(), "{name}: empty SPIR-V"),
        Ok(Err(e)) => panic!("{name}: SPIR-V writer: {e}"),
        Err(_) => panic!("{name}: SPIR-V writer panicked"),
    }
}

/// Every decoded kernel, with every decoder, becomes SPIR-V (the tensor-core matmul runs only on
/// GPUs CI lacks, so this is where a writer failure shows first).
#[test]
fn every_decoded_kernel_writes_spirv() {
    for ty in DECODER_TYPES {
        for kernel in DECODED {
            let k = shaders::source(kernel).expect("in ALL");
            spirv(&format!("{kernel} with {ty}"), &shaders::with_decoder(k, ty).expect("decoder"));
        }
    }
}

/// The browser's kernel list ([`shaders::browser_kernels`]) names real, valid modules (naga, less
/// the `enable subgroups;` only the browser's compiler wants), so a failure of one in the browser
/// is that compiler's.
#[test]
fn every_browser_kernel_validates() {
    let kernels = shaders::browser_kernels(true);
    assert!(kernels.len() > 60, "only {} kernels", kernels.len());
    for (name, src) in kernels {
        validate(&name, &src.replace("enable subgroups;\n", ""));
    }
}

/// The round trip through pack2x16float appears only in the `round_f16` stand-ins, every one of
/// which the exact section replaces; the kernels validate with it.
#[test]
fn every_f16_round_trip_is_the_spliced_section() {
    let trip = "unpack2x16float(pack2x16float(";
    let mut spliced = 0;
    for (name, _) in ALL {
        let src = shaders::source(name).expect("in ALL");
        let exact = shaders::with_round_f16(src);
        let body = exact.as_deref().unwrap_or(src);
        assert!(
            !body.contains(trip),
            "{name} rounds to f16 through pack2x16float outside its round_f16 section"
        );
        if let Some(exact) = exact.filter(|_| *name != "f16_round.wgsl") {
            assert!(exact.contains("0xffffe000u"), "{name}: the exact rounding was not spliced");
            if shaders::stands_alone(name) {
                validate(&format!("{name} with the exact round_f16"), &exact);
            }
            spliced += 1;
        }
    }
    assert_eq!(
        spliced, 6,
        "act_quant, attn_decode, attn_decode_gqa, attn_prefill, exact_attention and glu round to f16"
    );
}
