// glu.wgsl — gate[t, i] = act(gate[t, i]) · up[t, i] for t < step.n_tokens, i < width: the gated
// feed-forward's activation, in place on gate. act = SiLU (`gelu` = 0: x / (1 + e^-x), in f32) or
// GELU-tanh (`gelu` = 1) evaluated as ggml's CPU build does: input rounded to f16, the tanh formula
// in f32, the result rounded to f16; 0 at or below -10, the input itself at or above 10. CPU twin:
// gpu::glu_cpu (cpu::ops::swiglu / geglu); launcher: core/src/gpu/glu.rs.
//
// Layout: gate and up [n_tokens, width] f32 at gate_off / up_off (elements); rows are contiguous,
// so element e of the step is gate[gate_off + e].
// Dispatch: ceil(n_tokens · width / WG) workgroups of WG over x then y; one element each.

const WG: u32 = 256u;

struct Params {
    width: u32,
    gate_off: u32,
    up_off: u32,
    gelu: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;  // [gate_off + n_tokens · width]
@group(0) @binding(1) var<storage, read> up: array<f32>;          // [up_off + n_tokens · width]
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wg.y * nwg.x + wg.x) * WG + lid;
    if e >= step.n_tokens * p.width {
        return;
    }
    gate[p.gate_off + e] = activate(gate[p.gate_off + e], p.gelu == 1u) * up[p.up_off + e];
}

// ---- act: the activation, also spliced into act_quant.wgsl (a GLU fused into the conversion of
// the down projection's input).
const SQRT_2_OVER_PI: f32 = 0.7978846;
const COEF_A: f32 = 0.044715;

fn gelu_tanh(x: f32) -> f32 {
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let h = round_f16(x);
    return round_f16(0.5 * h * (1.0 + tanh(SQRT_2_OVER_PI * h * (1.0 + COEF_A * h * h))));
}

fn activate(g: f32, gelu: bool) -> f32 {
    if gelu {
        return gelu_tanh(g);
    }
    return g / (1.0 + exp(-g));
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}
