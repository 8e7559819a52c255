//! Tests of top-k and sampled soft labels and their gradients.

use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// Vocabulary size of the target models.
const V: usize = 49_152;
/// Draws per position for sampled labels.
const N: u16 = 50;
/// k of the top-k baseline in the fidelity comparison.
const K: usize = 12;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Standard normal by Box-Muller.
fn std_normal<R: Rng>(r: &mut R) -> f64 {
    let u = 1.0 - r.random::<f64>(); // (0, 1]
    let v = r.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Standard Gumbel by inversion.
fn gumbel<R: Rng>(r: &mut R) -> f64 {
    let u = r.random::<f64>().max(f64::MIN_POSITIVE);
    -(-u.ln()).ln()
}

fn normal_logits<R: Rng>(r: &mut R, v: usize, scale: f64) -> Vec<f32> {
    (0..v).map(|_| (scale * std_normal(r)) as f32).collect()
}

/// LM-like teacher logits: `beta * Gumbel(0, 1)` with `beta ~ U(1.2, 2.0)` per position.
///
/// With Gumbel logits `exp(logit)` is Pareto-distributed, so the sorted probabilities
/// follow a Zipf law `p_(r) ~ r^-beta`: a peaked head with a long heavy tail over the
/// whole vocabulary, as LM next-token distributions have. Over this range of beta the
/// top-1 probability is mostly 0.2-0.8 (mean about 0.5), the entropy about 1-4 nats
/// (mean about 2.4) and the top-12 mass about 0.6-0.96 (mean about 0.83); the test
/// `lm_teacher_statistics` checks these.
fn lm_teacher<R: Rng>(r: &mut R) -> Vec<f32> {
    let beta = 1.2 + 0.8 * r.random::<f64>();
    (0..V).map(|_| (beta * gumbel(r)) as f32).collect()
}

fn probs(logits: &[f32]) -> Vec<f32> {
    softmax_f64(logits).iter().map(|&p| p as f32).collect()
}

fn kl(q_logits: &[f32], p_logits: &[f32]) -> f64 {
    let lq = log_softmax(q_logits);
    let lp = log_softmax(p_logits);
    lq.iter()
        .zip(&lp)
        .filter(|(&a, _)| a > f32::NEG_INFINITY)
        .map(|(&a, &b)| f64::from(a).exp() * f64::from(a - b))
        .sum()
}

fn norm(a: &[f32]) -> f64 {
    a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

// ---------------------------------------------------------------- basics

#[test]
fn log_softmax_is_stable_and_normalised() {
    let l = log_softmax(&[1000.0, 1000.0, f32::NEG_INFINITY]);
    assert!((l[0] + std::f32::consts::LN_2).abs() < 1e-6);
    assert!((l[1] + std::f32::consts::LN_2).abs() < 1e-6);
    assert_eq!(l[2], f32::NEG_INFINITY);
    let l = log_softmax(&[-1000.0, -1001.0]);
    assert!(l.iter().all(|x| x.is_finite()));
    let total: f64 = l.iter().map(|&x| f64::from(x).exp()).sum();
    assert!((total - 1.0).abs() < 1e-6);
}

#[test]
fn top_k_mass_sums_to_one_and_ids_are_ordered() {
    let mut r = rng(1);
    for &scale in &[1.0, 4.0] {
        let logits = normal_logits(&mut r, V, scale);
        let lsm = log_softmax(&logits);
        for &k in &[1usize, 12, 16, 64] {
            let t = top_k(&logits, k);
            assert_eq!(t.ids.len(), k);
            assert_eq!(t.logprobs.len(), k);
            let mass: f64 = t.logprobs.iter().map(|&l| f64::from(l).exp()).sum::<f64>()
                + f64::from(t.tail_logmass).exp();
            assert!(
                (mass - 1.0).abs() < 1e-5,
                "scale {scale} k {k}: mass {mass}"
            );
            for w in t.ids.windows(2) {
                let (a, b) = (logits[w[0] as usize], logits[w[1] as usize]);
                assert!(a > b || (a == b && w[0] < w[1]), "order {w:?}");
            }
            for (&id, &lp) in t.ids.iter().zip(&t.logprobs) {
                assert_eq!(lp, lsm[id as usize]);
            }
            // Nothing left out is more probable than the least probable kept id.
            let kept: HashSet<u32> = t.ids.iter().copied().collect();
            let last = *t.ids.last().unwrap();
            let floor = logits[last as usize];
            for (i, &x) in logits.iter().enumerate() {
                if !kept.contains(&(i as u32)) {
                    assert!(x < floor || (x == floor && i as u32 > last));
                }
            }
        }
    }
}

#[test]
fn top_k_clamps_and_full_vocab_has_neg_inf_tail() {
    let mut r = rng(2);
    let logits = normal_logits(&mut r, V, 2.0);
    for k in [V, V + 7] {
        let t = top_k(&logits, k);
        assert_eq!(t.ids.len(), V);
        assert_eq!(t.tail_logmass, f32::NEG_INFINITY);
        let mut sorted = t.ids.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &id)| i as u32 == id));
    }
    // A tail made only of masked (-inf) logits is exactly zero mass.
    let t = top_k(&[0.0, f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY], 2);
    assert_eq!(t.ids, vec![2, 0]);
    assert_eq!(t.tail_logmass, f32::NEG_INFINITY);
    // k = 0 keeps nothing: all the mass is tail.
    let t = top_k(&[0.0, 1.0], 0);
    assert!(t.ids.is_empty());
    assert!(t.tail_logmass.abs() < 1e-7);
}

#[test]
fn top_k_breaks_ties_by_lower_id() {
    let t = top_k(&[1.0, 3.0, 3.0, 0.0, 3.0], 2);
    assert_eq!(t.ids, vec![1, 2]);
    let t = top_k(&[5.0; 6], 4);
    assert_eq!(t.ids, vec![0, 1, 2, 3]);
    assert!((f64::from(t.tail_logmass) - (2.0f64 / 6.0).ln()).abs() < 1e-6);
}

#[test]
fn top_k_tail_is_accurate_when_tiny() {
    // 1 - p_top is below f32 resolution; the log-sum-exp tail still gets it right.
    let t = top_k(&[0.0, -40.0, -40.0], 1);
    let expected = -40.0 + 2.0f64.ln() - (1.0 + 2.0 * (-40.0f64).exp()).ln();
    assert!((f64::from(t.tail_logmass) - expected).abs() < 1e-5);
}

#[test]
fn targets_are_distributions() {
    let mut r = rng(3);
    let logits = normal_logits(&mut r, V, 3.0);
    let t = top_k(&logits, 16);
    let ren = topk_target(&t, V, TailMode::Renormalize);
    let uni = topk_target(&t, V, TailMode::Uniform);
    let sum = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
    assert!((sum(&ren) - 1.0).abs() < 1e-5);
    assert!((sum(&uni) - 1.0).abs() < 1e-5);
    let kept: HashSet<u32> = t.ids.iter().copied().collect();
    let each = (f64::from(t.tail_logmass).exp() / (V - 16) as f64) as f32;
    for i in 0..V {
        if !kept.contains(&(i as u32)) {
            assert_eq!(ren[i], 0.0);
            assert_eq!(uni[i], each);
        }
    }
    // Renormalised top-k keeps the ratios between kept ids.
    let (a, b) = (t.ids[0] as usize, t.ids[1] as usize);
    let ratio = f64::from(ren[a]) / f64::from(ren[b]);
    assert!((ratio - f64::from(t.logprobs[0] - t.logprobs[1]).exp()).abs() < 1e-4);

    let s = sample(&logits, N, &mut r);
    let st = sampled_target(&s, V);
    assert!((sum(&st) - 1.0).abs() < 1e-6);
    for (&id, &c) in s.ids.iter().zip(&s.counts) {
        assert_eq!(st[id as usize], f32::from(c) / f32::from(N));
    }
}

#[test]
fn kd_gradient_is_softmax_minus_target() {
    let mut r = rng(4);
    let s = normal_logits(&mut r, 1000, 2.0);
    let own = probs(&s);
    // At the student's own distribution the gradient vanishes.
    assert!(norm(&kd_gradient(&s, &own)) < 1e-6);
    let target = probs(&normal_logits(&mut r, 1000, 2.0));
    let g = kd_gradient(&s, &target);
    let total: f64 = g.iter().map(|&x| f64::from(x)).sum();
    assert!(total.abs() < 1e-5);
    // Finite-difference check of d/dz_i KL(target || softmax(z)) on a few coordinates.
    let loss = |z: &[f32]| {
        let l = log_softmax(z);
        -target
            .iter()
            .zip(&l)
            .map(|(&q, &lp)| f64::from(q) * f64::from(lp))
            .sum::<f64>()
    };
    for i in [0usize, 17, 999] {
        let h = 1e-2f32;
        let mut zp = s.clone();
        zp[i] += h;
        let mut zm = s.clone();
        zm[i] -= h;
        let fd = (loss(&zp) - loss(&zm)) / (2.0 * f64::from(h));
        assert!(
            (fd - f64::from(g[i])).abs() < 1e-4,
            "coord {i}: {fd} vs {}",
            g[i]
        );
    }
}

#[test]
fn cosine_basics() {
    assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
    assert!((cosine(&[1.0, 0.0], &[-3.0, 0.0]) + 1.0).abs() < 1e-12);
    assert_eq!(cosine(&[1.0, 0.0], &[0.0, 5.0]), 0.0);
    assert_eq!(cosine(&[0.0, 0.0], &[1.0, 5.0]), 0.0);
}

// ---------------------------------------------------------------- sampling

#[test]
fn sampled_counts_sum_to_n_ids_sorted_and_seeded() {
    let mut r = rng(5);
    let logits = normal_logits(&mut r, V, 3.0);
    for seed in 0..20 {
        let a = sample(&logits, N, &mut rng(seed));
        assert_eq!(a.draws(), u32::from(N));
        assert_eq!(a.counts.iter().map(|&c| u32::from(c)).sum::<u32>(), 50);
        assert!(a.counts.iter().all(|&c| c >= 1));
        assert!(a.ids.windows(2).all(|w| w[0] < w[1]));
        assert!(a.ids.iter().all(|&id| (id as usize) < V));
        assert_eq!(a, sample(&logits, N, &mut rng(seed)));
        // The reusable sampler consumes the RNG identically.
        assert_eq!(a, Sampler::new(&logits).draw(N, &mut rng(seed)));
    }
    assert_ne!(
        sample(&logits, N, &mut rng(100)),
        sample(&logits, N, &mut rng(101))
    );
    let empty = sample(&logits, 0, &mut r);
    assert!(empty.ids.is_empty() && empty.counts.is_empty());
    assert!(sampled_target(&empty, 4).iter().all(|&x| x == 0.0));
}

#[test]
fn zero_probability_ids_are_never_drawn() {
    let ninf = f32::NEG_INFINITY;
    let logits = [ninf, 0.0, ninf, 0.5, ninf];
    let mut r = rng(6);
    for _ in 0..2000 {
        let s = sample(&logits, N, &mut r);
        assert!(s.ids.iter().all(|&id| id == 1 || id == 3), "{:?}", s.ids);
    }
}

/// Mean of `counts / N` over 20 000 label sets converges to `softmax(logits)` on V = 8:
/// every coordinate within 5 standard errors (`sqrt(p (1 - p) / (N * sets))`).
#[test]
fn sampled_estimate_is_unbiased() {
    let logits = [2.0f32, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -4.0];
    let p = softmax_f64(&logits);
    let sets = 20_000;
    let sampler = Sampler::new(&logits);
    let mut r = rng(7);
    let mut mean = [0.0f64; 8];
    for _ in 0..sets {
        let t = sampled_target(&sampler.draw(N, &mut r), 8);
        for (m, &x) in mean.iter_mut().zip(&t) {
            *m += f64::from(x) / sets as f64;
        }
    }
    for i in 0..8 {
        let se = (p[i] * (1.0 - p[i]) / (f64::from(N) * sets as f64)).sqrt();
        assert!(
            (mean[i] - p[i]).abs() < 5.0 * se + 1e-7,
            "id {i}: {} vs {} (se {se})",
            mean[i],
            p[i]
        );
    }
    // A biased estimator (top-2 renormalised) is far outside that band.
    let t = topk_target(&top_k(&logits, 2), 8, TailMode::Renormalize);
    assert!((f64::from(t[0]) - p[0]).abs() > 0.05);
}

// ---------------------------------------------------------------- fidelity

/// How far the student is from the teacher.
#[derive(Clone, Copy, Debug)]
enum Student {
    /// At initialisation: logits iid N(0, 0.5^2), independent of the teacher
    /// (nearly uniform; KL(teacher || student) about 8.5 nats).
    Init,
    /// Under-confident but aligned: teacher logits / 2 + N(0, 0.5^2) (KL about 1.9).
    Hot,
    /// Teacher logits + iid N(0, sigma^2) noise.
    Noisy(f64),
}

impl Student {
    fn logits<R: Rng>(self, teacher: &[f32], r: &mut R) -> Vec<f32> {
        match self {
            Student::Init => normal_logits(r, teacher.len(), 0.5),
            Student::Hot => teacher
                .iter()
                .map(|&x| x / 2.0 + (0.5 * std_normal(r)) as f32)
                .collect(),
            Student::Noisy(s) => teacher
                .iter()
                .map(|&x| x + (s * std_normal(r)) as f32)
                .collect(),
        }
    }
}

/// Cosine accumulated over several vectors as if concatenated.
#[derive(Default)]
struct CatCos {
    dot: f64,
    na: f64,
    nb: f64,
}

impl CatCos {
    fn add(&mut self, a: &[f32], b: &[f32]) {
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            self.dot += x * y;
            self.na += x * x;
            self.nb += y * y;
        }
    }
    fn value(&self) -> f64 {
        self.dot / (self.na.sqrt() * self.nb.sqrt())
    }
}

/// Gradient fidelity of one student regime, each against the full-distribution
/// gradient. Index 0: sampled (N = 50), 1: top-12 Renormalize, 2: top-12 Uniform.
struct Fidelity {
    kl: f64,
    /// Mean over positions of the per-position cosine.
    per_position: [f64; 3],
    /// Cosine of the whole batch's logit gradient (all positions concatenated).
    batch: [f64; 3],
    /// Mean per-position cosine of the sampled gradient averaged over `REPEATS`
    /// independent label sets (the same context seen `REPEATS` times; tends to the
    /// expected gradient, which equals the full one). Top-k is deterministic, so
    /// its value would equal `per_position[1..]`.
    repeated: f64,
}

const REPEATS: usize = 64;

fn fidelity(teachers: &[Vec<f32>], student: Student, seed: u64) -> Fidelity {
    let mut r = rng(seed);
    let (mut kl_sum, mut per, mut rep) = (0.0, [0.0f64; 3], 0.0);
    let mut batch: [CatCos; 3] = Default::default();
    for t in teachers {
        let s = student.logits(t, &mut r);
        kl_sum += kl(t, &s);
        let full = kd_gradient(&s, &probs(t));
        let sampler = Sampler::new(t);
        let tk = top_k(t, K);
        let grads = [
            kd_gradient(&s, &sampled_target(&sampler.draw(N, &mut r), V)),
            kd_gradient(&s, &topk_target(&tk, V, TailMode::Renormalize)),
            kd_gradient(&s, &topk_target(&tk, V, TailMode::Uniform)),
        ];
        for i in 0..3 {
            per[i] += cosine(&grads[i], &full);
            batch[i].add(&grads[i], &full);
        }
        let mut avg = vec![0.0f32; V];
        let w = 1.0 / (f32::from(N) * REPEATS as f32);
        for _ in 0..REPEATS {
            let d = sampler.draw(N, &mut r);
            for (&id, &c) in d.ids.iter().zip(&d.counts) {
                avg[id as usize] += f32::from(c) * w;
            }
        }
        rep += cosine(&kd_gradient(&s, &avg), &full);
    }
    let n = teachers.len() as f64;
    Fidelity {
        kl: kl_sum / n,
        per_position: per.map(|x| x / n),
        batch: [batch[0].value(), batch[1].value(), batch[2].value()],
        repeated: rep / n,
    }
}

fn teachers(count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    (0..count).map(|_| lm_teacher(&mut r)).collect()
}

#[test]
fn lm_teacher_statistics() {
    let ts = teachers(100, 10);
    let (mut top1, mut ent, mut mass) = (0.0, 0.0, 0.0);
    for t in &ts {
        let lp = log_softmax(t);
        top1 += lp.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)).exp() as f64;
        ent -= lp
            .iter()
            .filter(|x| x.is_finite())
            .map(|&l| f64::from(l).exp() * f64::from(l))
            .sum::<f64>();
        mass += top_k(t, K)
            .logprobs
            .iter()
            .map(|&l| f64::from(l).exp())
            .sum::<f64>();
    }
    let n = ts.len() as f64;
    let (top1, ent, mass) = (top1 / n, ent / n, mass / n);
    println!(
        "LM-like teacher: mean top-1 {top1:.3}, entropy {ent:.2} nats, top-{K} mass {mass:.3}"
    );
    assert!((0.35..0.65).contains(&top1), "top-1 {top1}");
    assert!((1.5..3.5).contains(&ent), "entropy {ent}");
    assert!((0.7..0.92).contains(&mass), "top-{K} mass {mass}");
}

/// Gradient fidelity of sampled (N = 50) vs top-12 soft labels on LM-like teachers
/// (V = 49 152, 200 positions, see `lm_teacher`), for students at four distances.
///
/// Measured (seeded; `cargo test -- --nocapture` prints the table):
///
/// ```text
/// student    KL(q||p) | per-position cos      | batch cos             | sampled,
///                     | smp50  top12r  top12u | smp50  top12r  top12u | 64 sets avg
/// init        8.68    | 0.958  0.996   0.996  | 0.984  0.992   1.000  | 0.999
/// hot         1.71    | 0.949  0.996   0.995  | 0.978  0.990   0.999  | 0.999
/// noisy-2     1.22    | 0.907  0.969   0.998  | 0.973  0.982   0.999  | 0.981
/// noisy-0.5   0.075   | 0.587  0.755   0.975  | 0.770  0.805   0.989  | 0.957
/// ```
///
/// * The issue's claim "sampled cosine >= 0.95 on average" holds per position only
///   for a student far from the teacher (at initialisation, KL ~ 8.7 nats; the
///   under-confident `hot` student is at the line), and for the whole batch's
///   gradient down to KL ~ 1.2 nats. The sampled estimate's error has norm
///   ~sqrt((1 - |q|^2) / N) ~ 0.1 whatever the student, while the true gradient
///   shrinks as the student approaches the teacher, so the cosine falls.
/// * The second half of the claim does NOT hold for a single draw: top-12 gives a
///   *higher* per-position and batch cosine than 50 samples in every regime here.
///   Cosine is an L2 measure dominated by the head, where top-12 is exact; its
///   error (the dropped or flattened Zipf tail) is small in L2 even though it is
///   large in KL (see `topk_bias_does_not_average_out`).
/// * The paper's actual guarantee, unbiasedness, shows when label sets of the same
///   distribution are averaged (the same context seen again, or a shared parameter
///   summing over similar positions): with 64 label sets the sampled gradient beats
///   top-12 Renormalize in every regime, whose error is a bias no averaging removes.
///   Top-12 Uniform still has the higher cosine in the closest regime.
#[test]
fn gradient_fidelity_sampled_vs_topk() {
    let ts = teachers(200, 20);
    let regimes = [
        ("init", Student::Init),
        ("hot", Student::Hot),
        ("noisy-2", Student::Noisy(2.0)),
        ("noisy-0.5", Student::Noisy(0.5)),
    ];
    println!(
        "{:<10} {:>6} | per-position cos: {:>7} {:>7} {:>7} | batch cos: {:>7} {:>7} {:>7} | sampled x{REPEATS}",
        "student", "KL", "smp50", "top12r", "top12u", "smp50", "top12r", "top12u"
    );
    let mut results = Vec::new();
    for (i, &(name, student)) in regimes.iter().enumerate() {
        let f = fidelity(&ts, student, 100 + i as u64);
        println!(
            "{name:<10} {:>6.3} | {:>25.3} {:>7.3} {:>7.3} | {:>18.3} {:>7.3} {:>7.3} | {:>8.4}",
            f.kl,
            f.per_position[0],
            f.per_position[1],
            f.per_position[2],
            f.batch[0],
            f.batch[1],
            f.batch[2],
            f.repeated
        );
        results.push((name, f));
    }
    let init = &results[0].1;
    assert!(
        init.per_position[0] >= 0.94,
        "init per-position {}",
        init.per_position[0]
    );
    assert!(init.batch[0] >= 0.95, "init batch {}", init.batch[0]);
    let mid = &results[2].1;
    assert!(mid.batch[0] >= 0.95, "noisy-2 batch {}", mid.batch[0]);
    let close = &results[3].1;
    assert!(
        close.per_position[0] < 0.9,
        "close per-position {}",
        close.per_position[0]
    );
    for (name, f) in &results {
        // Single draw: top-12 is not further off than 50 samples (claim refuted).
        assert!(f.per_position[2] > f.per_position[0] + 0.02, "{name}");
        assert!(f.batch[2] > f.batch[0], "{name}");
        // Averaged label sets: the unbiased estimate wins over the biased one.
        assert!(f.repeated >= 0.95, "{name}: repeated {}", f.repeated);
        assert!(f.repeated > f.per_position[1], "{name}");
    }
    assert!(init.per_position[1] > init.per_position[0]);
}

/// With the student equal to the teacher the full gradient is zero. Averaging sampled
/// label sets drives the gradient to zero (norm ~ 1/sqrt(repeats)); top-k's gradient is
/// its bias and stays. A student trained to the top-12 target converges to it: the
/// Renormalize target gives the tail zero probability (infinite KL from the teacher),
/// the Uniform one stays a finite but large KL away (printed).
#[test]
fn topk_bias_does_not_average_out() {
    let ts = teachers(100, 30);
    let mut r = rng(31);
    let (mut smp1, mut smp_rep, mut ren, mut uni, mut kl_uni) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for t in &ts {
        let q = probs(t);
        let sampler = Sampler::new(t);
        smp1 += norm(&kd_gradient(
            t,
            &sampled_target(&sampler.draw(N, &mut r), V),
        ));
        let mut avg = vec![0.0f32; V];
        let w = 1.0 / (f32::from(N) * REPEATS as f32);
        for _ in 0..REPEATS {
            let d = sampler.draw(N, &mut r);
            for (&id, &c) in d.ids.iter().zip(&d.counts) {
                avg[id as usize] += f32::from(c) * w;
            }
        }
        smp_rep += norm(&kd_gradient(t, &avg));
        let tk = top_k(t, K);
        ren += norm(&kd_gradient(t, &topk_target(&tk, V, TailMode::Renormalize)));
        let u = topk_target(&tk, V, TailMode::Uniform);
        uni += norm(&kd_gradient(t, &u));
        kl_uni += q
            .iter()
            .zip(&u)
            .filter(|(&a, _)| a > 0.0)
            .map(|(&a, &b)| f64::from(a) * (f64::from(a) / f64::from(b)).ln())
            .sum::<f64>();
    }
    let n = ts.len() as f64;
    let (smp1, smp_rep, ren, uni, kl_uni) = (smp1 / n, smp_rep / n, ren / n, uni / n, kl_uni / n);
    println!(
        "gradient norm at student == teacher: sampled x1 {smp1:.4}, sampled x{REPEATS} {smp_rep:.4}, \
         top-{K} renorm {ren:.4}, top-{K} uniform {uni:.4}; KL(teacher || uniform-tail target) {kl_uni:.3} nats"
    );
    let ratio = smp1 / smp_rep;
    let expected = (REPEATS as f64).sqrt();
    assert!((ratio / expected - 1.0).abs() < 0.15, "noise ratio {ratio}");
    assert!(smp_rep < 0.25 * ren, "{smp_rep} vs {ren}");
    assert!(kl_uni > 0.1);
}

// ---------------------------------------------------------------- storage

/// Unique ids and bytes per token for N = 50 on the LM-like teachers, plus the
/// range across teacher peakedness (fixed Zipf exponents). The measured mean must
/// match the exact expectation `sum 1 - (1 - p)^N` within 5 %.
#[test]
fn bytes_per_token() {
    assert_eq!(topk_bytes_per_token(16), 100.0);
    assert_eq!(topk_bytes_per_token(64), 388.0);
    assert_eq!(sampled_bytes_per_token(6.0), 36.0);

    let ts = teachers(200, 40);
    let mut r = rng(41);
    let measured = mean_unique_ids(ts.iter().map(|t| t.as_slice()), N, &mut r);
    let exact = ts.iter().map(|t| expected_unique_ids(t, N)).sum::<f64>() / ts.len() as f64;
    println!(
        "N={N}: mean unique ids {measured:.2} (exact {exact:.2}) -> sampled {:.1} B/token; \
         top-12 {:.0}, top-16 {:.0}, top-64 {:.0} B/token",
        sampled_bytes_per_token(measured),
        topk_bytes_per_token(12),
        topk_bytes_per_token(16),
        topk_bytes_per_token(64)
    );
    assert!(
        (measured / exact - 1.0).abs() < 0.05,
        "{measured} vs {exact}"
    );
    assert!(measured > 1.0 && measured < f64::from(N));
    assert!(sampled_bytes_per_token(measured) < topk_bytes_per_token(64));

    for beta in [1.2, 1.5, 2.0, 2.5, 3.0] {
        let mut r = rng(42);
        let ts: Vec<Vec<f32>> = (0..50)
            .map(|_| (0..V).map(|_| (beta * gumbel(&mut r)) as f32).collect())
            .collect();
        let u = mean_unique_ids(ts.iter().map(|t| t.as_slice()), N, &mut r);
        println!(
            "  Zipf exponent {beta}: {u:.1} unique ids, {:.0} B/token",
            sampled_bytes_per_token(u)
        );
    }
}
