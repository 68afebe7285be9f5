//! Sampling: turning logits into the next token.
//!
//! The chain follows llama.cpp's default order: logit bias, penalties over a window of recent
//! tokens, then (unless greedy) top-k, top-p and min-p on the softmax of the penalised logits,
//! temperature, and a draw from a seeded generator — so the same seed gives the same text.

/// Sampling parameters, with llama.cpp's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below) is greedy.
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1 disables.
    pub top_p: f32,
    /// 0 disables.
    pub min_p: f32,
    /// 1 disables. Positive logits are divided by it, negative ones multiplied.
    pub repeat_penalty: f32,
    /// Subtracted once per occurrence in the window.
    pub frequency_penalty: f32,
    /// Subtracted once if present in the window.
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub penalty_last_n: usize,
    /// Added to a token's logit (`f32::NEG_INFINITY` bans it).
    pub logit_bias: Vec<(u32, f32)>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, ..Default::default() }
    }
}

/// A small, fast, seedable generator (xoshiro256**, seeded through splitmix64).
#[derive(Clone, Debug)]
pub struct Rng([u64; 4]);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Most candidates a backend's own sampler takes: [`Sampler::draw`] offers a draw only when top-k
/// keeps 1..=this many (the GPU's kernel sorts them in one workgroup).
pub const DRAW_TOP_K_MAX: usize = 256;

/// Most tokens whose logits one draw adjusts ([`Adjustments`]): the logit-bias entries and the
/// distinct tokens of the penalty window together. A sampler with more offers no draw.
pub const DRAW_ADJUST_MAX: usize = 64;

/// One token's adjustment before a draw ([`Adjustments::apply`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Adjust {
    pub id: u32,
    /// Whether the token has a logit bias (added even when 0, as [`Sampler::sample`] adds it).
    pub biased: bool,
    pub bias: f32,
    /// Occurrences in the penalty window (0: not penalised).
    pub n: u32,
}

/// A step's logit bias and repetition penalties, resolved per token: what [`Sampler::sample`]
/// does to the logits before the rest of the chain, for a backend that draws the token itself.
///
/// A backend that runs the next step before the host has seen this one's token (the GPU's step
/// ahead) takes [`Adjustments::ahead`]: the token leaving the penalty window counted out, and
/// `count_fed` set: the token the step is fed (the one this step picks) counts once more.
#[derive(Clone, Copy)]
pub struct Adjustments {
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// Penalties over a window are on: the next step's adjustments count this step's token.
    pub windowed: bool,
    /// The token that leaves the window when the next one enters ([`NO_TOKEN`]: none).
    pub leaving: u32,
    /// The token the step is fed counts once more in the window than `tokens` say.
    pub count_fed: bool,
    /// The adjusted tokens are the first `len` of `tokens`, each id once.
    pub len: u32,
    pub tokens: [Adjust; DRAW_ADJUST_MAX],
}

/// No token: [`Adjustments::leaving`] when the window is not full.
pub const NO_TOKEN: u32 = u32::MAX;

impl Default for Adjustments {
    fn default() -> Self {
        Adjustments {
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            windowed: false,
            leaving: NO_TOKEN,
            count_fed: false,
            len: 0,
            tokens: [Adjust::default(); DRAW_ADJUST_MAX],
        }
    }
}

impl Adjustments {
    pub fn as_slice(&self) -> &[Adjust] {
        &self.tokens[..(self.len as usize).min(DRAW_ADJUST_MAX)]
    }

    /// The next step's adjustments before its token is known: the token leaving the window
    /// counted out, the fed token counted in (`count_fed`). Equal to these without a window.
    pub fn ahead(&self) -> Adjustments {
        if !self.windowed {
            return *self;
        }
        let mut next = Adjustments { leaving: NO_TOKEN, count_fed: true, ..*self };
        let len = next.as_slice().len();
        if let Some(a) = next.tokens[..len].iter_mut().find(|a| a.id == self.leaving) {
            a.n = a.n.saturating_sub(1);
        }
        next
    }

    /// The distinct tokens these change, by id, each as one [`Adjust`] (the fed token `fed`
    /// counted in when `count_fed`): two adjustments with the same effect give the same list.
    pub fn effect(&self, fed: u32) -> Vec<Adjust> {
        let mut out: Vec<Adjust> = self.as_slice().to_vec();
        if self.count_fed {
            match out.iter_mut().find(|a| a.id == fed) {
                Some(a) => a.n += 1,
                None => out.push(Adjust { id: fed, n: 1, ..Adjust::default() }),
            }
        }
        out.retain(|a| a.biased || a.n > 0);
        out.sort_unstable_by_key(|a| a.id);
        out
    }

    /// Whether `self` and `other` (which counts `fed` in) change the same tokens alike.
    pub fn same_effect(&self, other: &Adjustments, fed: u32) -> bool {
        let params = |a: &Adjustments| {
            (a.repeat_penalty.to_bits(), a.frequency_penalty.to_bits(), a.presence_penalty.to_bits())
        };
        let bits =
            |v: Vec<Adjust>| v.iter().map(|a| (a.id, a.biased, a.bias.to_bits(), a.n)).collect::<Vec<_>>();
        params(self) == params(other) && bits(self.effect(fed)) == bits(other.effect(fed))
    }

    /// `logit` adjusted as `a` says: plus the bias; then, penalised, divided by the repeat penalty
    /// (multiplied if not positive) less `n · frequency + presence`.
    pub fn apply(&self, a: &Adjust, logit: f32) -> f32 {
        let mut c = if a.biased { logit + a.bias } else { logit };
        if a.n > 0 {
            c = if c > 0.0 { c / self.repeat_penalty } else { c * self.repeat_penalty };
            c -= a.n as f32 * self.frequency_penalty + self.presence_penalty;
        }
        c
    }

    fn bits(&self) -> impl PartialEq + '_ {
        let entries = self.as_slice().iter().map(|a| (a.id, a.biased, a.bias.to_bits(), a.n));
        let p = (
            self.repeat_penalty.to_bits(),
            self.frequency_penalty.to_bits(),
            self.presence_penalty.to_bits(),
        );
        let window = (self.windowed, self.leaving, self.count_fed);
        (p, window, entries.collect::<Vec<_>>())
    }
}

impl std::fmt::Debug for Adjustments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adjustments")
            .field("repeat_penalty", &self.repeat_penalty)
            .field("frequency_penalty", &self.frequency_penalty)
            .field("presence_penalty", &self.presence_penalty)
            .field("windowed", &self.windowed)
            .field("leaving", &self.leaving)
            .field("count_fed", &self.count_fed)
            .field("tokens", &self.as_slice())
            .finish()
    }
}

impl PartialEq for Adjustments {
    fn eq(&self, o: &Adjustments) -> bool {
        self.bits() == o.bits()
    }
}

/// One step's draw from the sampling chain, for a backend that picks the token itself instead of
/// returning the logits (the GPU: one token id read back, not the vocabulary's logits): the
/// logit adjustments, top-k, top-p and min-p on the softmax of the logits, temperature, then the
/// uniform `r` the sampler's generator gave. [`pick`] is its reference. Equality is bitwise, so a
/// draw can sit in `Eq` types.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    /// > 0.
    pub temperature: f32,
    /// 1..=[`DRAW_TOP_K_MAX`].
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    /// Uniform in [0, 1).
    pub r: f32,
    /// The generator's next value: the next step's r, for a backend that runs that step before
    /// the host has seen this one's token (the GPU's step ahead).
    pub r_next: f32,
    /// Logit bias and penalties, applied first.
    pub adjust: Adjustments,
}

/// Temperature 1, top-k 1, no top-p, min-p or adjustment, r 0: for filling in the rest.
impl Default for Draw {
    fn default() -> Self {
        Draw {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
            r: 0.0,
            r_next: 0.0,
            adjust: Adjustments::default(),
        }
    }
}

impl PartialEq for Draw {
    fn eq(&self, o: &Draw) -> bool {
        let bits = |d: &Draw| {
            let (t, p, m) = (d.temperature.to_bits(), d.top_p.to_bits(), d.min_p.to_bits());
            (t, d.top_k, p, m, d.r.to_bits(), d.r_next.to_bits())
        };
        bits(self) == bits(o) && self.adjust == o.adjust
    }
}

impl Eq for Draw {}

/// The token `draw` picks from `logits`, exactly as [`Sampler::sample`] picks it for the same
/// parameters and generator state: the CPU twin of a backend's own sampler. `fed`: the token the
/// step was fed, which a draw with [`Adjustments::count_fed`] counts into its window.
pub fn pick_fed(logits: &[f32], draw: &Draw, fed: u32) -> u32 {
    let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    for a in draw.adjust.effect(fed) {
        if let Some(c) = cand.get_mut(a.id as usize) {
            c.1 = draw.adjust.apply(&a, c.1);
        }
    }
    choose(&mut cand, &mut Vec::new(), draw)
}

/// [`pick_fed`] of a draw that does not count its fed token (every draw a sampler gives).
pub fn pick(logits: &[f32], draw: &Draw) -> u32 {
    pick_fed(logits, draw, NO_TOKEN)
}

/// The non-greedy end of the chain over `cand` (all tokens, penalised): top-k, the softmax of
/// those sorted best first, top-p, min-p, temperature, and the token whose share of the
/// cumulative mass holds `draw.r`. `probs` is scratch.
fn choose(cand: &mut Vec<(u32, f32)>, probs: &mut Vec<f32>, draw: &Draw) -> u32 {
    // Candidates sorted by logit, best first; top-k first so the sort is cheap.
    let k = if draw.top_k == 0 { cand.len() } else { (draw.top_k as usize).min(cand.len()) };
    if k == 0 {
        return 0;
    }
    if k < cand.len() {
        cand.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        cand.truncate(k);
    }
    cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    softmax_sorted(cand, probs);
    // top-p: the smallest prefix whose mass reaches p (at least one).
    let mut keep = cand.len();
    if draw.top_p < 1.0 {
        let mut mass = 0.0;
        for (i, pr) in probs.iter().enumerate() {
            mass += pr;
            if mass >= draw.top_p {
                keep = i + 1;
                break;
            }
        }
    }
    // min-p: drop tokens below min_p × the best probability.
    if draw.min_p > 0.0 {
        let floor = draw.min_p * probs[0];
        keep = keep.min(probs.iter().take_while(|&&pr| pr >= floor).count().max(1));
    }
    cand.truncate(keep);
    for c in cand.iter_mut() {
        c.1 /= draw.temperature;
    }
    softmax_sorted(cand, probs);
    let mut acc = 0.0;
    for (c, pr) in cand.iter().zip(probs.iter()) {
        acc += pr;
        if draw.r < acc {
            return c.0;
        }
    }
    cand.last().map_or(0, |c| c.0)
}

/// A sampler: parameters, the generator's state, and buffers reused across steps.
pub struct Sampler {
    pub params: SamplingParams,
    rng: Rng,
    /// (token, logit) candidates, reused every step.
    cand: Vec<(u32, f32)>,
    /// Probabilities of the candidates, reused every step.
    probs: Vec<f32>,
    /// Occurrence counts for the penalty window, indexed by token.
    counts: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Sampler {
        let rng = Rng::new(params.seed);
        Sampler { params, rng, cand: Vec::new(), probs: Vec::new(), counts: Vec::new() }
    }

    /// Whether [`Sampler::sample`] is the argmax of the raw logits (greedy, with no bias or
    /// penalty), so a backend can pick the token itself.
    pub fn is_argmax(&self) -> bool {
        let p = &self.params;
        p.temperature <= 0.0
            && p.logit_bias.is_empty()
            && p.repeat_penalty == 1.0
            && p.frequency_penalty == 0.0
            && p.presence_penalty == 0.0
    }

    /// Picks the next token from `logits` given the tokens so far (`history`, oldest first).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let p = &self.params;
        self.cand.clear();
        self.cand.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        for &(tok, bias) in &p.logit_bias {
            if let Some(c) = self.cand.get_mut(tok as usize) {
                c.1 += bias;
            }
        }
        self.apply_penalties(history);
        let p = &self.params;
        if p.temperature <= 0.0 {
            return argmax(&self.cand);
        }
        let draw = Draw {
            temperature: p.temperature,
            top_k: p.top_k.min(u32::MAX as usize) as u32,
            top_p: p.top_p,
            min_p: p.min_p,
            r: self.rng.next_f32(),
            r_next: 0.0,
            adjust: Adjustments::default(),
        };
        choose(&mut self.cand, &mut self.probs, &draw)
    }

    /// The next token's draw when a backend can pick it itself ([`Draw`]), given the tokens so
    /// far (`history`, oldest first, as [`Sampler::sample`] takes them): sampling at a
    /// temperature, top-k of 1..=[`DRAW_TOP_K_MAX`], or greedy, with at most
    /// [`DRAW_ADJUST_MAX`] tokens biased or penalised. It peeks at the generator;
    /// [`Sampler::drew`] consumes the draw once the backend has picked the token.
    ///
    /// Greedy is the top 1 of the adjusted logits at any temperature: the argmax, the lowest id
    /// on ties as [`argmax`] takes it, with no random number (r is 0, and the generator is left
    /// as [`Sampler::sample`] leaves it).
    pub fn draw(&self, history: &[u32]) -> Option<Draw> {
        let p = &self.params;
        let greedy = p.temperature <= 0.0;
        if !(greedy || (p.temperature > 0.0 && (1..=DRAW_TOP_K_MAX).contains(&p.top_k))) {
            return None;
        }
        let adjust = self.adjustments(history)?;
        if greedy {
            // The default draw is that argmax: top-k 1, r 0.
            return Some(Draw { adjust, ..Draw::default() });
        }
        let mut rng = self.rng.clone();
        let (r, r_next) = (rng.next_f32(), rng.next_f32());
        Some(Draw {
            temperature: p.temperature,
            top_k: p.top_k as u32,
            top_p: p.top_p,
            min_p: p.min_p,
            r,
            r_next,
            adjust,
        })
    }

    /// The logit bias and the penalties [`Sampler::sample`] would apply after `history`, per
    /// token; `None` past [`DRAW_ADJUST_MAX`] tokens.
    fn adjustments(&self, history: &[u32]) -> Option<Adjustments> {
        let p = &self.params;
        let mut a = Adjustments {
            repeat_penalty: p.repeat_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            ..Adjustments::default()
        };
        let mut n = 0;
        let mut entry = |id: u32, a: &mut Adjustments| -> Option<usize> {
            if let Some(i) = a.tokens[..n].iter().position(|t| t.id == id) {
                return Some(i);
            }
            (n < DRAW_ADJUST_MAX).then(|| {
                a.tokens[n] = Adjust { id, ..Adjust::default() };
                n += 1;
                n - 1
            })
        };
        for &(id, bias) in &p.logit_bias {
            let i = entry(id, &mut a)?;
            // A repeated id is added twice by the CPU's loop, which one sum would not round alike.
            if a.tokens[i].biased {
                return None;
            }
            a.tokens[i].bias = bias;
            a.tokens[i].biased = true;
        }
        let penalised = !(p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0);
        if penalised && p.penalty_last_n > 0 {
            let start = history.len().saturating_sub(p.penalty_last_n);
            for &t in &history[start..] {
                let i = entry(t, &mut a)?;
                a.tokens[i].n += 1;
            }
            a.windowed = true;
            // Full: the oldest leaves when the next token enters.
            if history.len() >= p.penalty_last_n {
                a.leaving = history[start];
            }
        }
        a.len = n as u32;
        Some(a)
    }

    /// Advances the generator past [`Sampler::draw`]'s draw: the backend picked the token with it.
    pub fn drew(&mut self) {
        // Not for a greedy draw, which used no number (there is no draw at a NaN temperature).
        if self.params.temperature > 0.0 {
            self.rng.next_f32();
        }
    }

    fn apply_penalties(&mut self, history: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0 {
            return;
        }
        let window = &history[history.len().saturating_sub(p.penalty_last_n)..];
        self.counts.resize(self.cand.len(), 0);
        for &t in window {
            if let Some(c) = self.counts.get_mut(t as usize) {
                *c += 1;
            }
        }
        for &t in window {
            let Some(n) = self.counts.get(t as usize).copied() else { continue };
            if n == 0 {
                continue; // already penalised
            }
            let c = &mut self.cand[t as usize].1;
            *c = if *c > 0.0 { *c / p.repeat_penalty } else { *c * p.repeat_penalty };
            *c -= n as f32 * p.frequency_penalty + p.presence_penalty;
            self.counts[t as usize] = 0;
        }
    }
}

/// Index of the largest of `logits` (the lowest on ties; NaN never wins).
pub fn argmax_logits(logits: &[f32]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (t, &l) in logits.iter().enumerate() {
        if l > best.1 {
            best = (t as u32, l);
        }
    }
    best.0
}

/// Index of the largest logit (the lowest id on ties, as llama.cpp).
pub fn argmax(cand: &[(u32, f32)]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for &(t, l) in cand {
        if l > best.1 {
            best = (t, l);
        }
    }
    best.0
}

/// Probabilities of candidates sorted best first, into `out`.
fn softmax_sorted(cand: &[(u32, f32)], out: &mut Vec<f32>) {
    let max = cand.first().map_or(0.0, |c| c.1);
    out.clear();
    out.extend(cand.iter().map(|c| (c.1 - max).exp()));
    let sum: f32 = out.iter().sum();
    out.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37) % 101) as f32 / 10.0).collect()
    }

    #[test]
    fn greedy_picks_the_max() {
        let l = logits();
        let best = (0..100).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
        assert_eq!(Sampler::new(SamplingParams::greedy()).sample(&l, &[]), best);
    }

    #[test]
    fn same_seed_same_draws_different_seed_different_draws() {
        let l = vec![0.0f32; 1000];
        let params = |seed| SamplingParams {
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            temperature: 1.0,
            seed,
            ..Default::default()
        };
        let draw = |seed| {
            let mut s = Sampler::new(params(seed));
            (0..32).map(|_| s.sample(&l, &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_one_is_greedy_and_bias_can_ban() {
        let l = logits();
        let best = Sampler::new(SamplingParams::greedy()).sample(&l, &[]);
        let mut s = Sampler::new(SamplingParams { top_k: 1, temperature: 1.0, ..Default::default() });
        assert_eq!(s.sample(&l, &[]), best);
        let mut s = Sampler::new(SamplingParams {
            logit_bias: vec![(best, f32::NEG_INFINITY)],
            ..SamplingParams::greedy()
        });
        assert_ne!(s.sample(&l, &[]), best);
    }

    #[test]
    fn repeat_penalty_moves_greedy_off_a_repeated_token() {
        let mut l = vec![0.0f32; 10];
        l[3] = 2.0;
        l[5] = 1.5;
        let mut s = Sampler::new(SamplingParams { repeat_penalty: 2.0, ..SamplingParams::greedy() });
        assert_eq!(s.sample(&l, &[3]), 5);
        let mut s = Sampler::new(SamplingParams { presence_penalty: 0.6, ..SamplingParams::greedy() });
        assert_eq!(s.sample(&l, &[3, 3]), 5);
    }

    /// A backend that picks with [`Sampler::draw`] (then [`Sampler::drew`]) gives the tokens
    /// [`Sampler::sample`] gives from the same logits and seed, step after step, with and without
    /// a logit bias and penalties over the tokens so far; a sampler with top-k 0 or above the cap,
    /// greedy, or more adjusted tokens than a draw holds, offers no draw.
    #[test]
    fn draws_pick_what_the_sampler_samples() {
        let mut x = 0x1234_5678u32;
        let mut logits = || -> Vec<f32> {
            (0..1000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 2000) as f32 / 200.0 - 5.0
                })
                .collect()
        };
        let adjusted = SamplingParams {
            repeat_penalty: 1.3,
            frequency_penalty: 0.4,
            presence_penalty: -0.2,
            penalty_last_n: 16,
            logit_bias: vec![(3, 5.0), (7, f32::NEG_INFINITY), (9, 0.0), (5000, 1.0)],
            ..Default::default()
        };
        for (top_k, top_p, min_p, temperature, base) in [
            (40, 0.95, 0.05, 0.8, SamplingParams::default()),
            (256, 1.0, 0.0, 1.3, SamplingParams::default()),
            (5, 0.5, 0.0, 0.4, SamplingParams::default()),
            (40, 0.95, 0.05, 0.8, adjusted.clone()),
            (3, 1.0, 0.0, 2.0, adjusted.clone()),
            // Greedy with penalties and biases: the argmax of the adjusted logits.
            (40, 0.95, 0.05, 0.0, adjusted.clone()),
        ] {
            let params = SamplingParams { top_k, top_p, min_p, temperature, seed: 11, ..base };
            let (mut a, mut b) = (Sampler::new(params.clone()), Sampler::new(params));
            // The tokens so far: what was picked, so penalised tokens come back.
            let mut history = vec![3, 3, 8];
            for _ in 0..64 {
                let l = logits();
                let d = b.draw(&history).expect("a draw");
                assert_eq!(b.draw(&history), Some(d), "draw() only peeks");
                let t = a.sample(&l, &history);
                assert_eq!(pick(&l, &d), t);
                b.drew();
                assert_eq!(b.draw(&history).map(|n| n.r), Some(d.r_next), "r_next is the next draw's r");
                history.push(t);
            }
        }
        // A greedy draw uses no random number: the generator stays where sample() leaves it.
        let greedy = SamplingParams { seed: 3, ..SamplingParams::greedy() };
        let (mut a, mut b) = (Sampler::new(greedy.clone()), Sampler::new(greedy));
        assert_eq!(b.draw(&[]).map(|d| (d.r, d.top_k)), Some((0.0, 1)));
        a.sample(&logits(), &[]);
        b.drew();
        assert_eq!(a.rng.next_f32(), b.rng.next_f32());
        let none = |p: SamplingParams| Sampler::new(p).draw(&[]);
        assert_eq!(none(SamplingParams { top_k: 0, ..Default::default() }), None);
        assert_eq!(none(SamplingParams { temperature: f32::NAN, ..Default::default() }), None);
        assert_eq!(none(SamplingParams { top_k: DRAW_TOP_K_MAX + 1, ..Default::default() }), None);
        let wide = (0..DRAW_ADJUST_MAX as u32 + 1).map(|i| (i, 1.0)).collect();
        assert_eq!(none(SamplingParams { logit_bias: wide, ..Default::default() }), None);
        let long: Vec<u32> = (0..100).collect();
        let p = SamplingParams { repeat_penalty: 1.1, penalty_last_n: 64, ..Default::default() };
        assert!(Sampler::new(p.clone()).draw(&long).is_some(), "64 distinct in the window");
        let p = SamplingParams { penalty_last_n: 65, ..p };
        assert_eq!(Sampler::new(p).draw(&long), None, "65 distinct in the window");
    }

    /// Which adjustments make a draw depend on the tokens so far.
    #[test]
    fn only_penalties_depend_on_history() {
        let biased = SamplingParams { logit_bias: vec![(2, 1.0)], ..Default::default() };
        let d = Sampler::new(biased).draw(&[2, 2]).unwrap();
        assert_eq!((d.adjust.len, d.adjust.windowed), (1, false));
        assert_eq!(d.adjust.ahead(), d.adjust, "a bias alone is the same next step");
        let penalised = SamplingParams { presence_penalty: 0.5, ..Default::default() };
        let d = Sampler::new(penalised.clone()).draw(&[2, 2, 4]).unwrap();
        assert_eq!((d.adjust.len, d.adjust.windowed, d.adjust.leaving), (2, true, NO_TOKEN));
        assert_eq!(Sampler::new(penalised).draw(&[]).unwrap().adjust.len, 0);
    }

    /// The step ahead's adjustments (the leaving token counted out, the fed one in) have the
    /// effect of the next step's own once its token is known, and pick the same token, through a
    /// window that fills and slides.
    #[test]
    fn the_step_ahead_adjusts_as_the_next_step() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 3,
            repeat_penalty: 1.4,
            frequency_penalty: 0.3,
            presence_penalty: 0.2,
            penalty_last_n: 5,
            logit_bias: vec![(1, 2.0), (6, -1.0)],
            seed: 5,
            ..Default::default()
        };
        let mut s = Sampler::new(params);
        let mut x = 7u32;
        let mut history = vec![1u32, 2];
        for step in 0..40 {
            let l: Vec<f32> = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 400) as f32 / 100.0
                })
                .collect();
            let d = s.draw(&history).unwrap();
            let ahead = Draw { r: d.r_next, r_next: 0.0, adjust: d.adjust.ahead(), ..d };
            let t = s.sample(&l, &history);
            history.push(t);
            let next = s.draw(&history).unwrap();
            assert!(next.adjust.same_effect(&ahead.adjust, t), "step {step}: {next:?} vs {ahead:?} fed {t}");
            assert_eq!(pick_fed(&l, &ahead, t), pick(&l, &next), "step {step}");
            assert!(!next.adjust.same_effect(&ahead.adjust, (t + 1) % 12), "step {step}: another fed token");
        }
    }

    /// Ties at the k-th place keep the lowest ids, in id order.
    #[test]
    fn top_k_ties_keep_the_lowest_ids() {
        let l = vec![1.0f32; 10];
        let d = Draw { top_k: 3, ..Default::default() };
        assert_eq!(pick(&l, &d), 0);
        assert_eq!(pick(&l, &Draw { r: 0.5, ..d }), 1);
        assert_eq!(pick(&l, &Draw { r: 0.9, ..d }), 2);
    }

    #[test]
    fn min_p_and_top_p_restrict_to_the_head() {
        let mut l = vec![-10.0f32; 50];
        l[10] = 5.0;
        l[20] = 4.9;
        for seed in 0..50 {
            let mut s = Sampler::new(SamplingParams {
                min_p: 0.5,
                top_k: 0,
                top_p: 1.0,
                temperature: 1.0,
                seed,
                ..Default::default()
            });
            assert!([10, 20].contains(&s.sample(&l, &[])));
            let mut s = Sampler::new(SamplingParams {
                top_p: 0.4,
                top_k: 0,
                min_p: 0.0,
                temperature: 1.0,
                seed,
                ..Default::default()
            });
            assert_eq!(s.sample(&l, &[]), 10);
        }
    }
}
