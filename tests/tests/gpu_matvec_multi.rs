//! The mat-vecs over a few tokens (`shaders/matvec_multi*.wgsl`, batched decode) against their
//! CPU twin (`quant::dot` per token and row), on whatever adapter this machine has.
//!
//! Every type with a mat-vec: the integer kernels of the packed-input types (Q4_K, Q6_K, Q8_0:
//! x as the CPU's own packed levels, `act_pack_cpu`, the twin multiplying the same levels) and
//! the decoded kernel of the others. Row counts that are not multiples of the 2 rows per
//! workgroup (7, 33); float widths that end inside a quad (34, 578) and Q*_0/1 widths that are
//! not multiples of 256; token counts 2, 3, 7, 8, 9, 16 (each token-group size, partial groups
//! and the in-kernel loop over groups) with buffers for more; x and y offsets; the add mode; both
//! reductions and both workgroup geometries; a tensor split into pieces.
//!
//! No adapter = failure, unless `AETHER_NO_GPU=1` (see `aether_tests::gpu`).

use aether_core::gpu::{
    Gpu, GpuOptions, GpuTensor, MatVecMulti, Step, StepBuffer, TILE_TOKENS, act_pack_cpu, act_quant_cpu,
    matvec_multi_cpu, packed_input, shaders, tile_workgroup_bytes,
};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, test_gpu, weights};

const UNTOUCHED: f32 = 12345.0;

/// Worst NMSE accepted (the bound for matrix ops). The integer kernels sum exact integers and
/// land near 1e-14, the decoded ones (f32 sums in another order) near 1e-13; a wrong scale,
/// token or row anywhere gives 1e-2 and up.
const MAX_NMSE: f64 = 5e-4;

const TOKENS: [usize; 6] = [2, 3, 7, 8, 9, 16];

/// One case: `Err` says what differed; `Ok` the NMSE and the pipeline key.
#[allow(clippy::too_many_arguments)]
fn check(
    gpu: &Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    raw: bool,
    add: bool,
    rng: &mut Rng,
) -> Result<(f64, String), String> {
    let what = format!("{ty} rows={rows} cols={cols} n_tokens={n_tokens} raw={raw} add={add}");
    let bytes = weights(ty, rows, cols, raw, rng);
    let x = rng.vec(n_tokens * cols);
    let max_tokens = n_tokens as u32 + 2;
    let packed = packed_input(ty);
    // x as the kernel reads it, and as the twin sees it.
    let (words, x_off, x_cpu): (Vec<u32>, usize, Vec<f32>) = if packed {
        let words = act_pack_cpu(ty, &x, cols).map_err(|e| format!("{what}: packing x: {e}"))?;
        (words, 4, act_quant_cpu(ty, &x).map_err(|e| format!("{what}: {e}"))?)
    } else {
        (x.iter().map(|v| v.to_bits()).collect(), 3, x.clone())
    };
    let product =
        matvec_multi_cpu(ty, &bytes, &x_cpu, n_tokens, cols).map_err(|e| format!("{what}: twin: {e}"))?;
    let x_stride = words.len() / n_tokens;
    let y_off = 5;
    let y_len = y_off + max_tokens as usize * rows + 3;
    let y0: Vec<f32> = if add { rng.vec(y_len) } else { vec![UNTOUCHED; y_len] };
    let want: Vec<f32> =
        if add { product.iter().zip(&y0[y_off..]).map(|(p, b)| b + p).collect() } else { product };

    let run = || -> aether_core::Result<(Vec<f32>, String)> {
        let w = GpuTensor::upload(gpu, "w", ty, cols as u64, rows as u64, &bytes, &mut |_, _| {})?;
        let xb = gpu.storage("x", (x_off + max_tokens as usize * x_stride) as u64 * 4)?;
        gpu.queue().write_buffer(&xb, x_off as u64 * 4, bytemuck::cast_slice(&words));
        let yb = gpu.storage("y", y_len as u64 * 4)?;
        gpu.queue().write_buffer(&yb, 0, bytemuck::cast_slice(&y0));
        let step = StepBuffer::new(gpu)?;
        step.write(gpu, Step::new(0, n_tokens as u32));
        let (xo, yo) = (x_off as u64, y_off as u64);
        let op = if add {
            MatVecMulti::new_add(gpu, &w, &xb, xo, &yb, yo, &step, max_tokens)?
        } else {
            MatVecMulti::new(gpu, &w, &xb, xo, &yb, yo, &step, max_tokens)?
        };
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            op.encode(&mut pass, n_tokens as u32);
        }
        gpu.submit(enc, "multi-token mat-vec test")?;
        Ok((pollster::block_on(gpu.read_f32(&yb, 0, y_len))?, op.key(n_tokens as u32).to_string()))
    };
    let (y, key) = run().map_err(|e| format!("{what}: {e}"))?;
    let end = y_off + n_tokens * rows;
    if let Some(i) = (0..y_off).chain(end..y_len).find(|&i| y[i] != y0[i]) {
        return Err(format!(
            "{what} ({key}): wrote outside y[{y_off}..{end}], at {i}: {} (was {})",
            y[i], y0[i]
        ));
    }
    let nmse =
        std::panic::catch_unwind(|| assert_nmse(&y[y_off..end], &want, MAX_NMSE, &format!("{what} ({key})")))
            .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())?;
    Ok((nmse, key))
}

/// Widths for a type: not multiples of a quad or of 256 where its blocks allow.
fn widths(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        1 => &[34, 578],
        32 => &[96, 544],
        _ => &[256, 768],
    }
}

/// Every case of `types` on `gpu`; returns the pipeline keys run. Collects every failure first.
fn check_types(gpu: &Gpu, types: &[GgmlType], label: &str) -> Vec<String> {
    let mut rng = Rng::new(0x6d17);
    let mut failures = Vec::new();
    let mut keys = Vec::new();
    for &ty in types {
        let mut worst = 0f64;
        let mut case = 0;
        for rows in [7, 33] {
            for n_tokens in TOKENS {
                case += 1;
                let cols = widths(ty)[case % 2];
                let (raw, add) = (case % 3 == 0, case % 2 == 1);
                match check(gpu, ty, rows, cols, n_tokens, raw, add, &mut rng) {
                    Ok((nmse, key)) => {
                        worst = worst.max(nmse);
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                    Err(e) => failures.push(format!("{label}: {e}")),
                }
            }
        }
        eprintln!("{label} {ty}: worst NMSE {worst:.2e}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    keys
}

/// Options that keep steps of up to 16 tokens on the mat-vec's own variants, where a type also
/// has a tiled kernel.
fn few() -> GpuOptions {
    GpuOptions { multi_max: Some(16), ..Default::default() }
}

#[test]
fn multi_token_matvec_matches_cpu_for_every_type() {
    let Some(gpu) = test_gpu(few()) else { return };
    eprintln!("adapter: {}", gpu.describe());
    // Q4_1's mat-vec takes packed levels and has no multi-token kernel yet (forward.rs gives its
    // batches to the matmul); every other type has one.
    let types: Vec<GgmlType> = shaders::MATVEC_TYPES
        .iter()
        .copied()
        .filter(|&t| shaders::matvec_multi_kernel(t).is_some())
        .collect();
    assert_eq!(types.len(), shaders::MATVEC_TYPES.len() - 1, "types with a multi-token kernel: {types:?}");
    assert!(!types.contains(&GgmlType::Q4_1));
    let keys = check_types(&gpu, &types, "default");
    // Every type at each token-group size.
    assert_eq!(keys.len(), types.len() * aether_core::gpu::MULTI_TOKENS.len(), "{keys:?}");
    let sg = if gpu.caps().subgroups { "_sg" } else { "_wg" };
    for want in ["matvec_multi_q4_k", "matvec_multi_q6_k", "matvec_multi_q8_0", "matvec_multi_q4_0"] {
        assert!(keys.iter().any(|k| k.starts_with(&format!("{want}{sg}"))), "no {want}{sg}*: {keys:?}");
    }
}

/// The reduction and workgroup geometry this adapter does not take by default, on the integer
/// kernels and two decoded ones.
#[test]
fn multi_token_matvec_matches_cpu_in_the_other_variants() {
    let Some(probe) = test_gpu(GpuOptions::default()) else { return };
    let software = Some(!probe.caps().software);
    drop(probe);
    let types = [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::F16];
    let gpu = test_gpu(GpuOptions { software, no_subgroups: true, ..few() }).expect("adapter");
    let keys = check_types(&gpu, &types, "other geometry, no subgroups");
    let suffix = if gpu.caps().software { "_wg_sw" } else { "_wg_nt" };
    assert!(keys.iter().all(|k| k.contains(suffix)), "expected *{suffix}*: {keys:?}");
}

/// The tiled integer kernels (Q4_K's), which take steps of `TILE_MIN..=TILE_MAX` tokens by
/// default (here from 2 on): row counts that are not multiples of the 32 rows per workgroup, token counts at and
/// across each tile (16, 32, 64) and past the largest (the in-kernel loop over tiles), the add
/// mode. Each tile the device's workgroup memory holds runs.
#[test]
fn tiled_integer_matmul_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions { tile_min: Some(2), ..Default::default() }) else { return };
    let mut rng = Rng::new(0x7113);
    let mut failures = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut worst = 0f64;
    let mut case = 0;
    for rows in [7, 33, 64] {
        for n_tokens in [2, 16, 17, 40, 64, 70] {
            case += 1;
            let cols = [256, 768][case % 2];
            match check(&gpu, GgmlType::Q4K, rows, cols, n_tokens, case % 3 == 0, case % 2 == 1, &mut rng) {
                Ok((nmse, key)) => {
                    worst = worst.max(nmse);
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                Err(e) => failures.push(e),
            }
        }
    }
    eprintln!("tiled Q4_K: worst NMSE {worst:.2e}, keys {keys:?}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    let fits = |bt: u32| tile_workgroup_bytes(32, bt) <= gpu.caps().max_workgroup_storage;
    for bt in TILE_TOKENS.into_iter().filter(|&bt| fits(bt)) {
        assert!(keys.contains(&format!("matmul_int_q4_k_bt{bt}")), "tile {bt} never ran: {keys:?}");
    }
    assert!(keys.iter().all(|k| k.starts_with("matmul_int_q4_k_bt")), "{keys:?}");
}

/// By default a Q4_K step of fewer than `TILE_MIN` tokens runs the few-token mat-vec and a longer
/// one the tiles.
#[test]
fn q4_k_steps_take_the_few_token_kernel_then_the_tiles() {
    use aether_core::gpu::TILE_MIN;
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let mut rng = Rng::new(5);
    let n = TILE_MIN as usize;
    let (_, few) = check(&gpu, GgmlType::Q4K, 33, 512, n - 1, false, false, &mut rng).expect("few");
    let (_, tiled) = check(&gpu, GgmlType::Q4K, 33, 512, n, false, true, &mut rng).expect("tiled");
    assert!(few.starts_with("matvec_multi_q4_k"), "{} tokens: {few}", n - 1);
    assert_eq!(tiled, "matmul_int_q4_k_bt16", "{n} tokens");
}

#[test]
fn multi_token_matvec_pieces_fill_one_output() {
    const LIMIT: u64 = 2048;
    let Some(gpu) = test_gpu(GpuOptions { max_storage_binding: Some(LIMIT), ..Default::default() }) else {
        return;
    };
    let mut rng = Rng::new(31);
    let mut failures = Vec::new();
    for (ty, rows, cols, n_tokens, add) in [
        (GgmlType::Q4K, 65, 768, 9, true),
        (GgmlType::Q8_0, 70, 96, 3, false),
        (GgmlType::Q6K, 33, 256, 8, true),
        (GgmlType::F16, 75, 34, 16, false),
    ] {
        assert!(
            ty.row_bytes(cols as u64).expect("whole blocks") * rows as u64 > 2 * LIMIT,
            "{ty}: not split"
        );
        if let Err(e) = check(&gpu, ty, rows, cols, n_tokens, true, add, &mut rng) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
