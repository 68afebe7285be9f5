//! Where the GPU forward pass departs from the CPU reference: SmolLM2 (or any llama-shaped model
//! without biases or extra norms) evaluated on the GPU one op at a time
//! ([`GpuBackend::probe_run`]), each op's output compared with its CPU twin applied to the GPU's
//! own input of that op — so every line measures what that op alone adds, not what it inherited
//! (a projection of a normed input includes the norm, which the GPU fuses into its conversion).
//! Alongside, the CPU's own forward pass op by op (`--chain` prints each op's distance to it):
//! where the two part, and how the difference grows.
//! A line per layer and op kind: the worst relative error (max |gpu − cpu| / max |cpu|) and the
//! NMSE. Plain f32 summation-order noise gives ~1e-7; a projection whose Q8 input levels differ
//! shows ~1e-3 and more.
//!
//!     cargo run -q -p aether-tests --example gpu_ops_vs_cpu -- ["PROMPT" [DECODE_STEPS]] [--wg]
//!
//! The prompt goes in one step, then DECODE_STEPS greedy tokens (the CPU's) one at a time; each
//! step is probed, then the logits of the full step compared (KL and top-1).

use aether_core::cpu::attention::{attn_probs, attn_values};
use aether_core::cpu::ops::{RopeFreqs, matmul, rmsnorm, swiglu};
use aether_core::cpu::{Forward, Serial, State};
use aether_core::gguf::Gguf;
use aether_core::gpu::{GpuBackend, GpuModel, GpuOptions, rope_cpu};
use aether_core::model::{Model, QTensor};
use aether_core::session::CpuBackend;
use aether_core::tokenizer::Tokenizer;
use aether_tests::arch_goldens::Logits;
use aether_tests::logits::argmax;
use half::f16;

/// (worst relative error, NMSE) of `got` against `want`.
fn err(got: &[f32], want: &[f32]) -> (f64, f64) {
    let (mut num, mut den, mut worst, mut top) = (0f64, 0f64, 0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = (g as f64 - w as f64).abs();
        num += d * d;
        den += (w as f64) * (w as f64);
        worst = if d.is_nan() { f64::NAN } else { worst.max(d) };
        top = top.max((w as f64).abs());
    }
    (worst / top.max(1e-30), num / den.max(1e-30))
}

fn kl(p: &[f32], q: &[f32]) -> f64 {
    let soft = |l: &[f32]| {
        let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|x| x / s).collect::<Vec<_>>()
    };
    let (p, q) = (soft(p), soft(q));
    p.iter().zip(&q).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a / b.max(1e-300)).ln()).sum()
}

/// Per (op label): the worst relative error and NMSE over the layers, and the layer of the worst.
#[derive(Default)]
struct Tally(Vec<(String, f64, f64, usize)>);

impl Tally {
    fn add(&mut self, label: &str, layer: usize, (rel, nmse): (f64, f64)) {
        match self.0.iter_mut().find(|(l, ..)| l == label) {
            Some(t) => {
                if rel > t.1 {
                    (t.1, t.3) = (rel, layer);
                }
                t.2 = t.2.max(nmse);
            }
            None => self.0.push((label.to_string(), rel, nmse, layer)),
        }
    }
}

fn mm(w: &QTensor<'_>, x: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * w.rows()];
    let mut acts = Vec::new();
    let mut scratch = vec![0f32; n * w.rows()];
    matmul(&Serial, w, x, &mut out, n, &mut acts, &mut scratch).expect("matmul");
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wg = args.iter().any(|a| a == "--wg");
    let mut free = args.iter().filter(|a| !a.starts_with("--"));
    let prompt = free.next().cloned().unwrap_or_else(|| "The capital of France is".into());
    let steps: usize = free.next().and_then(|s| s.parse().ok()).unwrap_or(6);
    let verbose = args.iter().any(|a| a == "--layers");
    let chain = args.iter().any(|a| a == "--chain");

    let bytes = aether_tests::default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let c = &model.config;
    let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
    let prompt = tok.encode(&prompt, true, false).expect("encode");
    let n_ctx = 128;

    let opts = GpuOptions { no_subgroups: wg, ..Default::default() };
    let gpu = aether_tests::gpu::test_gpu(opts).expect("a GPU adapter");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let mut b = GpuBackend::new(&gpu, &gm, n_ctx, 64).expect("backend");
    let mut cpu = CpuBackend::new(&model, n_ctx, &Serial);
    let kinds = b.probe_ops();
    eprintln!("{} body ops", kinds.len());

    let (d, qd, kvd, hd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim, c.n_ff);
    let freqs = RopeFreqs {
        theta_scale: c.rope_base.powf(-2.0 / c.n_rot as f32),
        freq_scale: c.rope_freq_scale,
        attn_factor: c.rope_attn_factor,
        factors: model.weights.rope_factors(c, n_ctx),
    };
    let mut tokens = prompt.clone();
    let mut pos0 = 0;
    // The CPU's own chain (the reference forward pass, op by op): per layer f16 caches, K as
    // [n_ctx, kv_dim], V transposed [kv_dim, n_ctx].
    let mut kcache = vec![vec![f16::ZERO; n_ctx * kvd]; c.n_layer];
    let mut vcache = vec![vec![f16::ZERO; n_ctx * kvd]; c.n_layer];
    let mut first_jump: Option<String> = None;
    let mut total = Tally::default();
    for step in 0..=steps {
        let n = tokens.len();
        let pos: Vec<usize> = (pos0..pos0 + n).collect();
        let read = |b: &mut GpuBackend<'_>, name: &str, w: usize| {
            pollster::block_on(b.probe_read(name, n * w)).expect("read")
        };
        let mut tally = Tally::default();
        let (mut cx, mut cxn, mut cq, mut ck, mut cv, mut catt, mut cgate, mut cup) = (
            vec![0f32; n * d],
            vec![0f32; n * d],
            vec![],
            vec![],
            vec![],
            vec![0f32; n * qd],
            vec![],
            vec![],
        );
        // The chain's op: its output against the GPU's.
        let mut chain_check = |label: String, got: &[f32], want: &[f32]| {
            let (rel, _) = err(got, want);
            if chain {
                eprintln!("    chain {label}: worst rel {rel:.2e}");
            }
            if rel > 1e-5 && first_jump.is_none() {
                first_jump = Some(format!("step {step}, {label}: worst rel {rel:.2e}"));
            }
        };
        let (mut layer, mut norms, mut projs, mut ropes) = (0usize, 0usize, 0usize, 0usize);
        for (i, kind) in kinds.iter().enumerate() {
            let (x, _xn, q, k, att, gate, up) = (
                read(&mut b, "x", d),
                read(&mut b, "xn", d),
                read(&mut b, "q", qd),
                read(&mut b, "k", kvd),
                read(&mut b, "att", qd),
                read(&mut b, "gate", ff),
                read(&mut b, "up", ff),
            );
            b.probe_run(&tokens, i..i + 1).expect("probe");
            let lw = &model.weights.layers[layer.min(c.n_layer - 1)];
            match *kind {
                "get_rows" => {
                    for (t, &id) in tokens.iter().enumerate() {
                        model
                            .weights
                            .token_embd
                            .dequantize_row(id as usize, &mut cx[t * d..][..d])
                            .expect("embd");
                    }
                    chain_check("embedding".into(), &read(&mut b, "x", d), &cx);
                }
                "rmsnorm" => {
                    let w = if norms % 2 == 0 { &lw.attn_norm } else { &lw.ffn_norm };
                    let mut want = vec![0f32; n * d];
                    for t in 0..n {
                        rmsnorm(&mut want[t * d..][..d], &x[t * d..][..d], w, c.rms_eps);
                    }
                    let label = if norms % 2 == 0 { "attn_norm" } else { "ffn_norm" };
                    let got = read(&mut b, "xn", d);
                    tally.add(label, layer, err(&got, &want));
                    for t in 0..n {
                        rmsnorm(&mut cxn[t * d..][..d], &cx[t * d..][..d], w, c.rms_eps);
                    }
                    chain_check(format!("layer {layer} {label}"), &got, &cxn);
                    norms += 1;
                }
                "projection" => {
                    // The normed input: x normed on the CPU (the GPU fuses the norm into the
                    // conversion of the projections' input, so xn is not written).
                    let xn = {
                        let w = if projs % 7 < 3 { &lw.attn_norm } else { &lw.ffn_norm };
                        let mut xn = vec![0f32; n * d];
                        for t in 0..n {
                            rmsnorm(&mut xn[t * d..][..d], &x[t * d..][..d], w, c.rms_eps);
                        }
                        xn
                    };
                    if projs % 7 == 0 || projs % 7 == 4 {
                        let w = if projs % 7 == 0 { &lw.attn_norm } else { &lw.ffn_norm };
                        for t in 0..n {
                            rmsnorm(&mut cxn[t * d..][..d], &cx[t * d..][..d], w, c.rms_eps);
                        }
                    }
                    let (label, got, want) = match projs % 7 {
                        0 => ("q", read(&mut b, "q", qd), mm(&lw.attn_q, &xn, n)),
                        1 => ("k", read(&mut b, "k", kvd), mm(&lw.attn_k, &xn, n)),
                        2 => ("v", read(&mut b, "v", kvd), mm(&lw.attn_v, &xn, n)),
                        3 => {
                            let p = mm(&lw.attn_output, &att, n);
                            let got: Vec<f32> =
                                read(&mut b, "x", d).iter().zip(&x).map(|(a, b)| a - b).collect();
                            ("attn_output (+x)", got, p)
                        }
                        4 => ("gate", read(&mut b, "gate", ff), mm(&lw.ffn_gate, &xn, n)),
                        5 => ("up", read(&mut b, "up", ff), mm(&lw.ffn_up, &xn, n)),
                        _ => {
                            let mut h = gate.clone();
                            swiglu(&mut h, &up);
                            let p = mm(&lw.ffn_down, &h, n);
                            let got: Vec<f32> =
                                read(&mut b, "x", d).iter().zip(&x).map(|(a, b)| a - b).collect();
                            ("ffn_down (+x)", got, p)
                        }
                    };
                    tally.add(label, layer, err(&got, &want));
                    let (cgot, cwant) = match projs % 7 {
                        0 => {
                            cq = mm(&lw.attn_q, &cxn, n);
                            (read(&mut b, "q", qd), cq.clone())
                        }
                        1 => {
                            ck = mm(&lw.attn_k, &cxn, n);
                            (read(&mut b, "k", kvd), ck.clone())
                        }
                        2 => {
                            cv = mm(&lw.attn_v, &cxn, n);
                            (read(&mut b, "v", kvd), cv.clone())
                        }
                        3 => {
                            let p = mm(&lw.attn_output, &catt, n);
                            cx.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
                            (read(&mut b, "x", d), cx.clone())
                        }
                        4 => {
                            cgate = mm(&lw.ffn_gate, &cxn, n);
                            (read(&mut b, "gate", ff), cgate.clone())
                        }
                        5 => {
                            cup = mm(&lw.ffn_up, &cxn, n);
                            (read(&mut b, "up", ff), cup.clone())
                        }
                        _ => {
                            let mut h = cgate.clone();
                            swiglu(&mut h, &cup);
                            let p = mm(&lw.ffn_down, &h, n);
                            cx.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
                            (read(&mut b, "x", d), cx.clone())
                        }
                    };
                    chain_check(format!("layer {layer} {label}"), &cgot, &cwant);
                    projs += 1;
                    if projs % 7 == 0 {
                        layer += 1;
                        if chain && step == 0 {
                            // The residual stream after `layer` layers against the CPU's own.
                            let mut m = Model::from_gguf(&g).expect("model");
                            m.weights.layers.truncate(layer);
                            m.config.n_layer = layer;
                            let mut st = State::new(&m.config, n_ctx, 64);
                            Forward { model: &m }.eval(&mut st, &tokens, &Serial).expect("cpu");
                            let x = read(&mut b, "x", d);
                            let (rel, nmse) = err(&x[(n - 1) * d..], st.hidden());
                            eprintln!(
                                "    after layer {layer:2}: x vs CPU worst rel {rel:.2e}, NMSE {nmse:.2e}"
                            );
                        }
                    }
                }
                "rope" => {
                    let (name, heads, width, src) =
                        if ropes % 2 == 0 { ("q", c.n_head, qd, &q) } else { ("k", c.n_head_kv, kvd, &k) };
                    let mut want = src.clone();
                    let scale = if ropes % 2 == 0 { c.q_scale } else { 1.0 };
                    rope_cpu(&mut want, &pos, heads, hd, c.n_rot, c.rope_kind, &freqs, scale);
                    let label = if ropes % 2 == 0 { "rope q" } else { "rope k" };
                    let got = read(&mut b, name, width);
                    tally.add(label, layer, err(&got, &want));
                    let cs = if ropes % 2 == 0 { &mut cq } else { &mut ck };
                    rope_cpu(cs, &pos, heads, hd, c.n_rot, c.rope_kind, &freqs, scale);
                    chain_check(format!("layer {layer} {label}"), &got, cs);
                    if ropes % 2 == 1 {
                        for t in 0..n {
                            for e in 0..kvd {
                                kcache[layer][pos[t] * kvd + e] = f16::from_f32(ck[t * kvd + e]);
                                vcache[layer][e * n_ctx + pos[t]] = f16::from_f32(cv[t * kvd + e]);
                            }
                        }
                    }
                    ropes += 1;
                }
                "rope_kv" => {
                    // q turned in place; k turned only into the cache (the attention's check
                    // reads the cache), so k's chain and the CPU caches advance here.
                    let mut want = q.clone();
                    rope_cpu(&mut want, &pos, c.n_head, hd, c.n_rot, c.rope_kind, &freqs, c.q_scale);
                    let got = read(&mut b, "q", qd);
                    tally.add("rope q", layer, err(&got, &want));
                    rope_cpu(&mut cq, &pos, c.n_head, hd, c.n_rot, c.rope_kind, &freqs, c.q_scale);
                    chain_check(format!("layer {layer} rope q"), &got, &cq);
                    rope_cpu(&mut ck, &pos, c.n_head_kv, hd, c.n_rot, c.rope_kind, &freqs, 1.0);
                    for t in 0..n {
                        for e in 0..kvd {
                            kcache[layer][pos[t] * kvd + e] = f16::from_f32(ck[t * kvd + e]);
                            vcache[layer][e * n_ctx + pos[t]] = f16::from_f32(cv[t * kvd + e]);
                        }
                    }
                }
                "attention" => {
                    let words = |name: String, b: &mut GpuBackend<'_>| -> Vec<f16> {
                        pollster::block_on(b.probe_read(&name, n_ctx * kvd / 2))
                            .expect("cache")
                            .iter()
                            .flat_map(|w| {
                                let u = w.to_bits();
                                [f16::from_bits(u as u16), f16::from_bits((u >> 16) as u16)]
                            })
                            .collect()
                    };
                    let kc = words(format!("k_cache.{layer}"), &mut b);
                    let vc = words(format!("v_cache.{layer}"), &mut b);
                    // The CPU's V layout: [kv_dim, n_ctx].
                    let mut vt = vec![f16::ZERO; n_ctx * kvd];
                    for cell in 0..n_ctx {
                        for e in 0..kvd {
                            vt[e * n_ctx + cell] = vc[cell * kvd + e];
                        }
                    }
                    let group = c.n_head / c.n_head_kv;
                    let mut want = vec![0f32; n * qd];
                    let mut p = vec![0f32; n_ctx];
                    for t in 0..n {
                        for h in 0..c.n_head {
                            let q16: Vec<f32> = q[t * qd + h * hd..][..hd]
                                .iter()
                                .map(|&v| f16::from_f32(v).to_f32())
                                .collect();
                            let kv_off = (h / group) * hd;
                            let p = &mut p[..pos[t] + 1];
                            attn_probs(p, &q16, &kc, kvd, kv_off, c.kq_scale, 0);
                            attn_values(&mut want[t * qd + h * hd..][..hd], p, &vt, n_ctx, kv_off, 0);
                        }
                    }
                    let got = read(&mut b, "att", qd);
                    tally.add("attention", layer, err(&got, &want));
                    for t in 0..n {
                        for h in 0..c.n_head {
                            let q16: Vec<f32> = cq[t * qd + h * hd..][..hd]
                                .iter()
                                .map(|&v| f16::from_f32(v).to_f32())
                                .collect();
                            let kv_off = (h / group) * hd;
                            let p = &mut p[..pos[t] + 1];
                            attn_probs(p, &q16, &kcache[layer], kvd, kv_off, c.kq_scale, 0);
                            attn_values(
                                &mut catt[t * qd + h * hd..][..hd],
                                p,
                                &vcache[layer],
                                n_ctx,
                                kv_off,
                                0,
                            );
                        }
                    }
                    chain_check(format!("layer {layer} attention"), &got, &catt);
                }
                _ => {}
            }
        }
        // The whole step, evaluated normally, against the CPU.
        let got = b.logits(&tokens);
        let want = cpu.logits(&tokens);
        let top = |l: &[f32]| {
            let best = argmax(l) as usize;
            let second = l
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != best)
                .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
            (best, l[best] - second)
        };
        let (cb, cm) = top(&want);
        let (gb, gm_) = top(&got);
        eprintln!(
            "step {step} ({n} tokens at {pos0}): KL {:.2e}, logits {:?}, top-1 CPU {cb} (margin {cm:.3}) GPU {gb} (margin {gm_:.3})",
            kl(&want, &got),
            err(&got, &want),
        );
        for (label, rel, nmse, l) in &tally.0 {
            if verbose || step == 0 {
                eprintln!("    {label:18} worst rel {rel:.2e} (layer {l:2}), NMSE {nmse:.2e}");
            }
            total.add(label, *l, (*rel, *nmse));
        }
        pos0 += n;
        tokens = vec![cb as u32];
    }
    eprintln!("first op of the chain past 1e-5: {}", first_jump.as_deref().unwrap_or("none"));
    eprintln!("all steps:");
    for (label, rel, nmse, l) in &total.0 {
        eprintln!("    {label:18} worst rel {rel:.2e} (layer {l:2}), NMSE {nmse:.2e}");
    }
}
