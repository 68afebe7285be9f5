// softcap.wgsl — y[i] = cap · tanh(y[i] · (1/cap)) in place over n elements at y_off: Gemma's
// final logit soft-capping, in llama.cpp's order (scale, tanh, scale). CPU twin:
// gpu::softcap_cpu (cpu::ops::softcap); launcher: core/src/gpu/softcap.rs.
//
// tanh's argument is clamped to ±10 first (tanh(10) is 1 in f32): some drivers evaluate tanh as
// sinh/cosh, which overflow to NaN for large inputs.
// Dispatch: ceil(n / WG) workgroups of WG over x then y; one element each.

const WG: u32 = 256u;

struct Params {
    n: u32,
    y_off: u32,
    cap: f32,
    inv_cap: f32,  // 1/cap, rounded once on the CPU as the twin does
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;  // [y_off + n]
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.y * nwg.x + wg.x) * WG + lid;
    if i >= p.n {
        return;
    }
    let v = y[p.y_off + i] * p.inv_cap;
    y[p.y_off + i] = tanh(clamp(v, -10.0, 10.0)) * p.cap;
}
