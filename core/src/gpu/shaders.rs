//! The WGSL sources, compiled into the crate from `shaders/` (one kernel per file), and the five
//! splice steps. Nothing else is ever rewritten.
//!
//! Includes: a line `// include: NAME` stands for file NAME's whole text (functions several
//! kernels share: `q4_k_scales.wgsl`, `coop_common.wgsl`). [`source`] gives every file with its
//! includes put in, once (an included file includes nothing); every other step starts from that.
//! An included file uses what its includers declare, so it is validated in them.
//!
//! Decoder prefix: kernels that work on any weight type (`matmul.wgsl`, `get_rows.wgsl`; listed in
//! [`DECODED`]) call `dequant4` without defining it. [`with_decoder`] puts `dequant_common.wgsl`
//! (binding 0 `w`, the tensor's bytes, and the byte readers every decoder uses) and the type's
//! decoder `dequant_<type>.wgsl` in front of the kernel; the decoder declares `const BLOCK`,
//! `const BLOCK_BYTES` and `fn dequant4(row_byte, i) -> vec4<f32>` (other names start with
//! `dq_`), and is a valid module after the common part. The pipeline key is `<kernel>_<type>`
//! (`matmul_q4_k`). A kernel's `enable` directives (`matmul_coop.wgsl`'s) move to the front.
//!
//! Reduce splice: every mat-vec kernel ends at a `// ---- reduce` line, where its row reduction
//! belongs. [`splice_reduce`] keeps the kernel up to that line and appends the section from the
//! same line of `reduce_subgroup.wgsl` when the device has subgroups (key suffix `_sg`), else of
//! `reduce_workgroup.wgsl` (`_wg`, through workgroup memory); for the browser the subgroup
//! version also gets `enable subgroups;` first (WGSL requires it; naga in wgpu 30 rejects it and
//! keys subgroup built-ins off the device's features).
//!
//! Entry-point splice: the integer mat-vecs over a few tokens (`matvec_multi_<type>.wgsl` of the
//! packed-input types) share their entry point and token loop, `matvec_multi_int.wgsl`, which
//! [`matvec_multi_source`] puts in front of the kernel's reduce marker; the type's file gives the
//! slices it multiplies (`row_slice`, `tok_slice`, `term`).
//!
//! Rounding splice: a kernel that rounds values to f16 and keeps them as f32 holds a `// ----
//! round_f16` section with the round trip through pack2x16float, which a device may fold away
//! (the H100's Vulkan driver does). [`with_round_f16`] swaps in `f16_round.wgsl`'s section, the
//! rounding done on the bits; every pipeline gets it (`Gpu::pipeline_with`).
//!
//! So only some files stand alone ([`stands_alone`]): the decoders, the reductions and ordinary
//! kernels. The unit tests validate those alone, every mat-vec kernel with both reductions, and
//! every decoded kernel with every decoder.

use std::sync::LazyLock;

use crate::quant::GgmlType;

/// Every shader file, by name. A test validates each with naga, alone and spliced.
pub const ALL: &[(&str, &str)] = &[
    ("reduce_workgroup.wgsl", REDUCE_WORKGROUP),
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
    // The mat-vecs over a few tokens: integer ones for the packed-input types (their shared
    // entry point spliced on), a decoded one.
    ("matvec_multi_int.wgsl", MULTI_INT_MAIN),
    ("matvec_multi_q4_k.wgsl", include_str!("../../../shaders/matvec_multi_q4_k.wgsl")),
    ("matvec_multi_q6_k.wgsl", include_str!("../../../shaders/matvec_multi_q6_k.wgsl")),
    ("matvec_multi_q8_0.wgsl", include_str!("../../../shaders/matvec_multi_q8_0.wgsl")),
    ("matvec_multi.wgsl", include_str!("../../../shaders/matvec_multi.wgsl")),
    // Their tiled integer twins for steps of more tokens.
    ("matmul_int_q4_k.wgsl", include_str!("../../../shaders/matmul_int_q4_k.wgsl")),
    // Exact numerics (`GpuOptions::exact`): the CPU reference's arithmetic, bit for bit.
    ("exact_fp.wgsl", include_str!("../../../shaders/exact_fp.wgsl")),
    ("exact_matvec.wgsl", include_str!("../../../shaders/exact_matvec.wgsl")),
    ("exact_attention.wgsl", include_str!("../../../shaders/exact_attention.wgsl")),
    // Functions the kernels of one type include.
    ("q4_k_scales.wgsl", include_str!("../../../shaders/q4_k_scales.wgsl")),
    // A mat-vec's store (its `put` section), and the store of the fused q|k|v mat-vec of a
    // one-token step with the rope and KV cache store in it (swapped in for the other).
    ("put_rows.wgsl", include_str!("../../../shaders/put_rows.wgsl")),
    ("put_rope.wgsl", include_str!("../../../shaders/put_rope.wgsl")),
    // The element-wise kernels of the forward pass, and their swappable sections.
    ("rmsnorm.wgsl", include_str!("../../../shaders/rmsnorm.wgsl")),
    ("rmsnorm_inplace.wgsl", include_str!("../../../shaders/rmsnorm_inplace.wgsl")),
    ("rmsnorm_sg.wgsl", include_str!("../../../shaders/rmsnorm_sg.wgsl")),
    ("rope.wgsl", include_str!("../../../shaders/rope.wgsl")),
    ("rope_kv.wgsl", include_str!("../../../shaders/rope_kv.wgsl")),
    ("rope_angles.wgsl", include_str!("../../../shaders/rope_angles.wgsl")),
    ("glu.wgsl", include_str!("../../../shaders/glu.wgsl")),
    ("f16_round.wgsl", F16_ROUND),
    ("add.wgsl", include_str!("../../../shaders/add.wgsl")),
    ("block_sums.wgsl", include_str!("../../../shaders/block_sums.wgsl")),
    ("softcap.wgsl", include_str!("../../../shaders/softcap.wgsl")),
    ("stream_read.wgsl", include_str!("../../../shaders/stream_read.wgsl")),
    ("act_quant.wgsl", include_str!("../../../shaders/act_quant.wgsl")),
    ("kv_store.wgsl", include_str!("../../../shaders/kv_store.wgsl")),
    ("gather.wgsl", include_str!("../../../shaders/gather.wgsl")),
    ("argmax.wgsl", include_str!("../../../shaders/argmax.wgsl")),
    ("argmax_sg.wgsl", include_str!("../../../shaders/argmax_sg.wgsl")),
    ("sample.wgsl", include_str!("../../../shaders/sample.wgsl")),
    ("attn_decode.wgsl", include_str!("../../../shaders/attn_decode.wgsl")),
    ("attn_decode_gqa.wgsl", include_str!("../../../shaders/attn_decode_gqa.wgsl")),
    ("attn_decode_common.wgsl", include_str!("../../../shaders/attn_decode_common.wgsl")),
    ("attn_params.wgsl", include_str!("../../../shaders/attn_params.wgsl")),
    ("attn_merge.wgsl", include_str!("../../../shaders/attn_merge.wgsl")),
    ("attn_prefill.wgsl", include_str!("../../../shaders/attn_prefill.wgsl")),
    // Decoders (one per type in DECODER_TYPES) and the kernels they prefix (DECODED).
    ("dequant_common.wgsl", DEQUANT_COMMON),
    ("dequant_f32.wgsl", include_str!("../../../shaders/dequant_f32.wgsl")),
    ("dequant_f16.wgsl", include_str!("../../../shaders/dequant_f16.wgsl")),
    ("dequant_bf16.wgsl", include_str!("../../../shaders/dequant_bf16.wgsl")),
    ("dequant_q4_0.wgsl", include_str!("../../../shaders/dequant_q4_0.wgsl")),
    ("dequant_q4_1.wgsl", include_str!("../../../shaders/dequant_q4_1.wgsl")),
    ("dequant_q5_0.wgsl", include_str!("../../../shaders/dequant_q5_0.wgsl")),
    ("dequant_q5_1.wgsl", include_str!("../../../shaders/dequant_q5_1.wgsl")),
    ("dequant_q8_0.wgsl", include_str!("../../../shaders/dequant_q8_0.wgsl")),
    ("dequant_q2_k.wgsl", include_str!("../../../shaders/dequant_q2_k.wgsl")),
    ("dequant_q3_k.wgsl", include_str!("../../../shaders/dequant_q3_k.wgsl")),
    ("dequant_q4_k.wgsl", include_str!("../../../shaders/dequant_q4_k.wgsl")),
    ("dequant_q5_k.wgsl", include_str!("../../../shaders/dequant_q5_k.wgsl")),
    ("dequant_q6_k.wgsl", include_str!("../../../shaders/dequant_q6_k.wgsl")),
    ("get_rows.wgsl", include_str!("../../../shaders/get_rows.wgsl")),
    ("matmul.wgsl", include_str!("../../../shaders/matmul.wgsl")),
    ("matmul_coop.wgsl", include_str!("../../../shaders/matmul_coop.wgsl")),
    ("coop_common.wgsl", include_str!("../../../shaders/coop_common.wgsl")),
    // Its twin that reads one type's blocks itself (no decoder in front).
    ("matmul_coop_q4_k.wgsl", include_str!("../../../shaders/matmul_coop_q4_k.wgsl")),
    ("matmul_reduce.wgsl", include_str!("../../../shaders/matmul_reduce.wgsl")),
    ("gemm_stage.wgsl", include_str!("../../../shaders/gemm_stage.wgsl")),
    ("gemm_coop.wgsl", include_str!("../../../shaders/gemm_coop.wgsl")),
];

const REDUCE_WORKGROUP: &str = include_str!("../../../shaders/reduce_workgroup.wgsl");
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

/// The kernel of `ty`'s mat-vec over a few tokens and whether it is the decoded one
/// (`matvec_multi.wgsl`, completed by the type's decoder) rather than one of the type's own
/// (`matvec_multi_q4_k.wgsl`, for the packed-input types); `None` without either.
pub fn matvec_multi_kernel(ty: GgmlType) -> Option<(&'static str, bool)> {
    let own = format!("matvec_multi_{}.wgsl", ty.name().to_ascii_lowercase());
    if let Some(src) = source(&own) {
        return Some((src, false));
    }
    // The generic kernel reads x in f32: a type whose mat-vec takes packed levels needs its own.
    if !DECODER_TYPES.contains(&ty) || super::packed_input(ty) {
        return None;
    }
    Some((source("matvec_multi.wgsl")?, true))
}

/// `ty`'s tiled integer product over the tokens of a batched decode step
/// (`matmul_int_<type>.wgsl`: each block decoded once into workgroup memory for up to 64
/// tokens), if it has one.
pub fn matmul_int_kernel(ty: GgmlType) -> Option<&'static str> {
    source(&format!("matmul_int_{}.wgsl", ty.name().to_ascii_lowercase()))
}

/// matvec_multi_int.wgsl: the entry point of the integer mat-vecs over a few tokens, spliced in
/// front of their reduce marker ([`matvec_multi_source`]).
const MULTI_INT_MAIN: &str = include_str!("../../../shaders/matvec_multi_int.wgsl");

/// The source of `ty`'s mat-vec over a few tokens as the device compiles it: the kernel (a
/// type's own integer one followed by their shared entry point, matvec_multi_int.wgsl) with its
/// reduction spliced on, after the type's decoder if it takes one, after `enable subgroups;` for
/// the browser with subgroups. `None` if `ty` has no such kernel.
pub fn matvec_multi_source(ty: GgmlType, subgroups: bool, browser: bool) -> Option<String> {
    let (kernel, decoded) = matvec_multi_kernel(ty)?;
    let kernel = match decoded {
        true => kernel.to_string(),
        false => {
            let at = section_start(kernel)?;
            format!("{}{MULTI_INT_MAIN}{}", &kernel[..at], &kernel[at..])
        }
    };
    let spliced = splice_reduce(&kernel, subgroups, false)?;
    let src = if decoded { with_decoder(&spliced, ty)? } else { spliced };
    Some(for_backend(src, subgroups, browser))
}

/// The tensor types with a decoder (`dequant_<type>.wgsl`): the same as have a mat-vec kernel.
pub const DECODER_TYPES: [GgmlType; 13] = MATVEC_TYPES;

/// The kernels that are prefixed with a decoder; alone they lack `w` and `dequant4`.
pub const DECODED: &[&str] = &["get_rows.wgsl", "matmul.wgsl", "matmul_coop.wgsl", "gemm_stage.wgsl"];

/// The file stem of `ty`'s decoder (`dequant_q4_k`), if it has one.
pub fn dequant_stem(ty: GgmlType) -> Option<String> {
    DECODER_TYPES.contains(&ty).then(|| format!("dequant_{}", ty.name().to_ascii_lowercase()))
}

const DEQUANT_COMMON: &str = include_str!("../../../shaders/dequant_common.wgsl");

/// `ty`'s decoder after the part every decoder shares: a valid module with no entry point.
pub fn decoder(ty: GgmlType) -> Option<String> {
    let decoder = source(&format!("{}.wgsl", dequant_stem(ty)?))?;
    Some(format!("{DEQUANT_COMMON}\n{decoder}"))
}

/// `kernel` (the source of a file in [`DECODED`]) after `ty`'s decoder: a pipeline's source;
/// `None` if `ty` has no decoder. The kernel's `enable …;` lines (`matmul_coop.wgsl` has them)
/// move to the very front, where WGSL requires directives.
pub fn with_decoder(kernel: &str, ty: GgmlType) -> Option<String> {
    let is_directive = |l: &&str| l.starts_with("enable ");
    let directives: String = kernel.lines().filter(is_directive).map(|l| format!("{l}\n")).collect();
    let body: String = kernel.split_inclusive('\n').filter(|l| !is_directive(l)).collect();
    Some(format!("{directives}{}\n{body}", decoder(ty)?))
}

/// `ty`'s own tensor-core matmul (`matmul_coop_<type>.wgsl`: `matmul_coop.wgsl`'s interface, the
/// type's blocks read by the kernel itself, no decoder in front), if it has one.
pub fn matmul_coop_typed(ty: GgmlType) -> Option<&'static str> {
    source(&format!("matmul_coop_{}.wgsl", ty.name().to_ascii_lowercase()))
}

/// The source of shader file `name` (`matvec_q4_k.wgsl`), its includes put in.
pub fn source(name: &str) -> Option<&'static str> {
    RESOLVED.iter().find(|(n, _)| *n == name).map(|(_, s)| s.as_str())
}

/// The line that stands for another file's text.
pub const INCLUDE_MARKER: &str = "// include: ";

/// Every file of [`ALL`] with its includes put in, made on first use.
static RESOLVED: LazyLock<Vec<(&'static str, String)>> =
    LazyLock::new(|| ALL.iter().map(|&(name, src)| (name, with_includes(src))).collect());

/// `src` with each `// include: NAME` line replaced by file NAME's text (for a kernel variant read
/// from disk, as [`source`] does for the built-in files); a line naming no file stays, which a
/// unit test rules out for the built-in files.
pub fn with_includes(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.split_inclusive('\n') {
        let file = line.strip_prefix(INCLUDE_MARKER).map(str::trim);
        match file.and_then(|f| ALL.iter().find(|(n, _)| *n == f)) {
            Some((_, text)) => {
                out.push_str(text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Whether file `name` is a valid module by itself: not a mat-vec kernel (which ends where its
/// reduction is spliced on), a decoder (which follows the common part), a kernel in [`DECODED`]
/// nor a file other files include (which uses what they declare).
pub fn stands_alone(name: &str) -> bool {
    !name.starts_with("matvec_") && !DECODED.contains(&name) && !is_decoder(name) && !is_included(name)
}

/// Whether some file includes file `name`.
pub fn is_included(name: &str) -> bool {
    ALL.iter()
        .any(|(_, src)| src.lines().any(|l| l.strip_prefix(INCLUDE_MARKER).map(str::trim) == Some(name)))
}

/// Whether file `name` is a type's decoder (valid after `dequant_common.wgsl`, see [`decoder`]).
fn is_decoder(name: &str) -> bool {
    name.starts_with("dequant_") && name != "dequant_common.wgsl"
}

/// `kernel` up to its reduce marker followed by the reduction section: the subgroup one when
/// `subgroups` (after `enable subgroups;` when `browser` too: the WebGPU backend needs the
/// directive), else the workgroup-memory one. `None` if the kernel lacks the marker.
pub fn splice_reduce(kernel: &str, subgroups: bool, browser: bool) -> Option<String> {
    let reduce = if subgroups { REDUCE_SUBGROUP } else { REDUCE_WORKGROUP };
    splice_section(kernel, reduce, subgroups && browser)
}

/// `kernel` up to its reduce marker followed by the reduce section of `replacement` (another
/// shader file with such a section, e.g. `reduce_subgroup.wgsl`), after
/// `enable subgroups;` when `enable`; `None` if either lacks the marker.
pub fn splice_section(kernel: &str, replacement: &str, enable: bool) -> Option<String> {
    let head = &kernel[..section_start(kernel)?];
    let tail = &replacement[section_start(replacement)?..];
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

/// The default of `override NAME: u32 = Nu;` in `src` (the mat-vec kernels' `WG`).
pub fn override_u32(src: &str, name: &str) -> Option<u32> {
    let prefix = format!("override {name}: u32 = ");
    src.lines().find_map(|l| l.strip_prefix(&prefix)?.strip_suffix("u;")?.parse().ok())
}

/// f16_round.wgsl: the exact `round_f16` section ([`with_round_f16`]).
const F16_ROUND: &str = include_str!("../../../shaders/f16_round.wgsl");

/// `src` with its `round_f16` section (the round trip through pack2x16float) replaced by
/// f16_round.wgsl's, which rounds on the bits; `None` if `src` has no such section.
pub fn with_round_f16(src: &str) -> Option<String> {
    swap_section(src, F16_ROUND, "round_f16")
}

/// `kernel` with its section `name` replaced by the section of the same name in `from`. A section
/// runs from the line starting `// ---- name` (then a space, a colon or the end of the line) to
/// the next line starting `// ---- `, or to the end. The element-wise kernels use it to swap in
/// their in-place bindings (`rmsnorm_inplace.wgsl`) and subgroup reductions (`*_sg.wgsl`);
/// `None` if either file lacks the section.
pub fn swap_section(kernel: &str, from: &str, name: &str) -> Option<String> {
    let (start, end) = section_span(kernel, name)?;
    let (s, e) = section_span(from, name)?;
    let mut text = from[s..e].to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Some(format!("{}{text}{}", &kernel[..start], &kernel[end..]))
}

/// Byte range of section `name` in `src`.
fn section_span(src: &str, name: &str) -> Option<(usize, usize)> {
    let head = format!("// ---- {name}");
    let is_head = |line: &str| {
        line.strip_prefix(&head)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', '\n', '\r']))
    };
    let (mut at, mut start) = (0, None);
    for line in src.split_inclusive('\n') {
        match start {
            None if is_head(line) => start = Some(at),
            Some(s) if line.starts_with("// ---- ") => return Some((s, at)),
            _ => {}
        }
        at += line.len();
    }
    start.map(|s| (s, src.len()))
}

/// `src` as the device compiles it: after `enable subgroups;` for the browser's WebGPU backend
/// when it uses subgroups (naga natively rejects the directive; see the module docs).
pub fn for_backend(src: String, subgroups: bool, browser: bool) -> String {
    if subgroups && browser { format!("enable subgroups;\n{src}") } else { src }
}

/// Every kernel the browser's WebGPU backend could be asked to build, as the launchers prepare
/// them there, named: each stand-alone kernel alone and with each section its variant files
/// (`<stem>_*.wgsl`, and glu.wgsl's `act` for act_quant) can swap in, each mat-vec with both
/// reductions, the mat-vecs over a few tokens, and the embedding lookup and the portable matmul
/// with every decoder (the tensor-core matmul is native only). Subgroup variants only when
/// `subgroups`. For checking them against the browser's own WGSL compiler, which is stricter than
/// naga in places (a constant bitcast to +inf).
pub fn browser_kernels(subgroups: bool) -> Vec<(String, String)> {
    let reductions: &[bool] = if subgroups { &[false, true] } else { &[false] };
    let uses_subgroups = |file: &str| file.ends_with("_sg.wgsl") || file.contains("subgroup");
    let sections = |src: &str| -> Vec<String> {
        src.lines()
            .filter_map(|l| l.strip_prefix("// ---- ")?.split([' ', ':']).next().map(str::to_string))
            .filter(|s| !s.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    // Cooperative matrices never reach a browser.
    let native_only = |src: &str| src.contains("enable wgpu_cooperative_matrix");
    let resolved = RESOLVED.iter().map(|(n, s)| (*n, s.as_str()));
    for (name, src) in resolved.filter(|(n, s)| stands_alone(n) && s.contains("@compute") && !native_only(s))
    {
        out.push((name.to_string(), for_backend(src.to_string(), false, true)));
        let stem = name.trim_end_matches(".wgsl");
        for (file, from) in RESOLVED.iter() {
            let variant =
                file.starts_with(&format!("{stem}_")) || (name == "act_quant.wgsl" && *file == "glu.wgsl");
            if !variant || (uses_subgroups(file) && !subgroups) {
                continue;
            }
            for section in sections(src).into_iter().filter(|s| sections(from).contains(s)) {
                if let Some(v) = swap_section(src, from, &section) {
                    out.push((
                        format!("{name} with {file}'s {section}"),
                        for_backend(v, uses_subgroups(file), true),
                    ));
                }
            }
        }
    }
    for ty in MATVEC_TYPES {
        let Some(kernel) = matvec_stem(ty).and_then(|s| source(&format!("{s}.wgsl"))) else { continue };
        for &sg in reductions {
            if let Some(v) = splice_reduce(kernel, sg, true) {
                out.push((format!("mat-vec {} (subgroups {sg})", ty.name()), v));
            }
            let rope = source("put_rope.wgsl").and_then(|r| swap_section(kernel, r, "put"));
            if let Some(v) = rope.and_then(|k| splice_reduce(&k, sg, true)) {
                out.push((format!("mat-vec {} with the rope store (subgroups {sg})", ty.name()), v));
            }
            if let Some(v) = matvec_multi_source(ty, sg, true) {
                out.push((format!("few-token mat-vec {} (subgroups {sg})", ty.name()), v));
            }
        }
        for kernel in ["get_rows.wgsl", "matmul.wgsl"] {
            if let Some(v) = source(kernel).and_then(|k| with_decoder(k, ty)) {
                out.push((format!("{kernel} with {}", ty.name()), v));
            }
        }
    }
    // As every pipeline is built (`Gpu::pipeline_with`).
    out.into_iter().map(|(n, s)| (n, with_round_f16(&s).unwrap_or(s))).collect()
}
