//! Hybrid sharing (additive shares and masked tensors) and the masked tensor product with mask
//! reuse, two parties on the in-memory channel, on every backend: exact reconstruction, the
//! documented bytes and rounds, and refusal of products the dealer did not plan.

mod common;

use std::sync::Arc;

use prifft::backend::Backend;
use prifft::mpc::masked::{self, MaskedTensor};
use prifft::mpc::{Dealer, MpcError, PreprocError, Share, local, sharing};
use prifft::prg::insecure_seeded_rng;
use prifft::ring::RingTensor;

type Ctx = prifft::mpc::PartyCtx<local::LocalChannel>;

fn random(shape: &[usize], seed: u64) -> RingTensor {
    RingTensor::random(shape, &mut insecure_seeded_rng(seed))
}

/// Cleartext batched product of rank-2 or rank-3 tensors.
fn product(a: &RingTensor, b: &RingTensor) -> RingTensor {
    if a.shape().len() == 2 {
        return a.matmul(b).unwrap();
    }
    let (h, m, k, n) = (a.shape()[0], a.shape()[1], a.shape()[2], b.shape()[2]);
    let mut out = Vec::new();
    for i in 0..h {
        let ai = RingTensor::from_vec(&[m, k], a.as_slice()[i * m * k..(i + 1) * m * k].to_vec());
        let bi = RingTensor::from_vec(&[k, n], b.as_slice()[i * k * n..(i + 1) * k * n].to_vec());
        out.extend(ai.unwrap().matmul(&bi.unwrap()).unwrap().into_vec());
    }
    RingTensor::from_vec(&[h, m, n], out).unwrap()
}

fn transpose(t: &RingTensor) -> RingTensor {
    let dims = t.shape();
    let (h, r, c) =
        if dims.len() == 2 { (1, dims[0], dims[1]) } else { (dims[0], dims[1], dims[2]) };
    let mut out = vec![0; t.len()];
    for b in 0..h {
        for i in 0..r {
            for j in 0..c {
                out[b * r * c + j * r + i] = t.as_slice()[b * r * c + i * c + j];
            }
        }
    }
    let shape = if dims.len() == 2 { vec![c, r] } else { vec![h, c, r] };
    RingTensor::from_vec(&shape, out).unwrap()
}

/// The raw output shares of one training step's three products of a linear layer with W opened
/// once — Y = X·W, dX = dY·Wᵀ, dW = Xᵀ·dY — on `backend`, X [.., m, k], W [.., k, n], checked
/// against the cleartext ring products and the documented costs.
fn layer_step(
    backend: Arc<dyn Backend>,
    batch: Option<usize>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<Vec<u64>> {
    let dims = |r: usize, c: usize| batch.map_or(vec![r, c], |b| vec![b, r, c]);
    let (x, w, dy) = (random(&dims(m, k), 1), random(&dims(k, n), 2), random(&dims(m, n), 3));
    let mut dealer = Dealer::insecure_with_seed(4);
    let rx = masked::gen_mask(&mut dealer, &dims(m, k)).unwrap();
    let rw = masked::gen_mask(&mut dealer, &dims(k, n)).unwrap();
    let rdy = masked::gen_mask(&mut dealer, &dims(m, n)).unwrap();
    masked::gen_matmul(&mut dealer, &rx, &rw).unwrap();
    masked::gen_matmul(&mut dealer, &rdy, &rw.t().unwrap()).unwrap();
    masked::gen_matmul(&mut dealer, &rx.t().unwrap(), &rdy).unwrap();
    let mut rng = insecure_seeded_rng(5);
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let [w0, w1] = sharing::share_secret(&w, &mut rng);
    let [d0, d1] = sharing::share_secret(&dy, &mut rng);
    let party = |x: Share, w: Share, dy: Share| {
        move |ctx: &mut Ctx| {
            let c0 = ctx.mark();
            let xh = masked::mask(ctx, &x)?;
            let wh = masked::mask(ctx, &w)?;
            let dyh = masked::mask(ctx, &dy)?;
            let c1 = ctx.mark();
            let y = masked::matmul(ctx, &xh, &wh)?;
            let dx = masked::matmul(ctx, &dyh, &wh.t()?)?;
            let dw = masked::matmul(ctx, &xh.t()?, &dyh)?;
            let c2 = ctx.mark();
            let back = xh.to_additive(ctx.id);
            Ok::<_, MpcError>(([y, dx, dw], back, [c1 - c0, c2 - c1], format!("{xh:?}")))
        }
    };
    let run =
        local::run_parties(None, backend, dealer.finish(), party(x0, w0, d0), party(x1, w1, d1))
            .unwrap();
    let (out0, back0, cost0, debug0) = run.out0;
    let (out1, back1, cost1, _) = run.out1;
    let want = [product(&x, &w), product(&dy, &transpose(&w)), product(&transpose(&x), &dy)];
    for ((a, b), want) in out0.iter().zip(&out1).zip(&want) {
        assert_eq!(&sharing::reconstruct(a, b).unwrap(), want);
    }
    // Masked → additive is local and exact.
    assert_eq!(sharing::reconstruct(&back0, &back1).unwrap(), x);
    // Opening costs 8 bytes per element of X, W and dY, once each; the products cost nothing.
    // Three Beaver products would send 8·(mk + kn) + 8·(mn + nk) + 8·(km + mn) per party.
    let h = batch.unwrap_or(1) as u64;
    let (m, k, n) = (m as u64, k as u64, n as u64);
    for [open, products] in [cost0, cost1] {
        assert_eq!(open.bytes_sent, 8 * h * (m * k + k * n + m * n));
        assert_eq!(open.rounds, 3);
        assert_eq!((products.bytes_sent, products.rounds), (0, 0));
    }
    assert_eq!(debug0, format!("MaskedTensor {{ shape: {:?}, .. }}", dims(m as usize, k as usize)));
    out0.iter().chain(&out1).map(|s| s.tensor().as_slice().to_vec()).collect()
}

#[test]
fn a_linear_layers_forward_and_backward_products_reuse_one_opening_of_each_operand() {
    layer_step(Arc::new(prifft::backend::Cpu), None, 7, 33, 5);
    layer_step(Arc::new(prifft::backend::Cpu), None, 1, 1, 1);
}

#[test]
fn batched_per_head_products_reconstruct_exactly() {
    layer_step(Arc::new(prifft::backend::Cpu), Some(3), 4, 6, 4);
}

#[cfg(feature = "gpu")]
#[test]
fn the_gpu_gives_the_cpus_shares() {
    let Some(gpu) = common::gpu_device() else { return };
    let cpu = layer_step(Arc::new(prifft::backend::Cpu), Some(2), 9, 17, 3);
    assert!(layer_step(Arc::new(gpu), Some(2), 9, 17, 3) == cpu, "GPU shares != CPU shares");
}

#[test]
fn the_scheduler_over_two_devices_gives_one_devices_shares() {
    let cpu = layer_step(Arc::new(prifft::backend::Cpu), None, 12, 8, 10);
    let split = layer_step(Arc::new(common::two_device_scheduler()), None, 12, 8, 10);
    assert!(split == cpu, "scheduled shares != one device's shares");
}

#[test]
fn a_product_the_dealer_did_not_plan_is_refused() {
    let mut dealer = Dealer::insecure_with_seed(6);
    let ra = masked::gen_mask(&mut dealer, &[2, 3]).unwrap();
    let rb = masked::gen_mask(&mut dealer, &[3, 2]).unwrap();
    let rc = masked::gen_mask(&mut dealer, &[2, 3]).unwrap();
    masked::gen_matmul(&mut dealer, &ra, &rb).unwrap();
    // The same product twice is refused by the dealer (its correlation is one item).
    assert!(masked::gen_matmul(&mut dealer, &ra, &rb).is_err());
    // Shapes that do not multiply.
    assert!(matches!(masked::gen_matmul(&mut dealer, &ra, &rc), Err(MpcError::Shape { .. })));
    let (a, b, c) = (random(&[2, 3], 7), random(&[3, 2], 8), random(&[2, 3], 9));
    let mut rng = insecure_seeded_rng(10);
    let (a, b, c) = (
        sharing::share_secret(&a, &mut rng),
        sharing::share_secret(&b, &mut rng),
        sharing::share_secret(&c, &mut rng),
    );
    let party = |i: usize| {
        let (a, b, c) = (a[i].clone(), b[i].clone(), c[i].clone());
        move |ctx: &mut Ctx| -> Result<(), MpcError> {
            let ah = masked::mask(ctx, &a)?;
            let bh = masked::mask(ctx, &b)?;
            let ch = masked::mask(ctx, &c)?;
            // C·B has the planned shape but C's mask is not A's: refused, and the item stays.
            let err = masked::matmul(ctx, &ch, &bh).unwrap_err();
            assert!(matches!(err, MpcError::Preproc(PreprocError::Unbound { .. })), "{err}");
            // Aᵀ·Bᵀ, a different orientation, is refused too.
            assert!(masked::matmul(ctx, &ah.t()?, &bh.t()?).is_err());
            masked::matmul(ctx, &ah, &bh)?;
            // And the correlation is gone after its one use.
            assert!(masked::matmul(ctx, &ah, &bh).is_err());
            Ok(())
        }
    };
    local::run_two_party(dealer.finish(), party(0), party(1)).unwrap();
}

#[test]
fn masks_and_product_correlations_survive_the_preprocessing_file_format() {
    let mut dealer = Dealer::insecure_with_seed(11);
    let ra = masked::gen_mask(&mut dealer, &[2, 4, 3]).unwrap();
    let rb = masked::gen_mask(&mut dealer, &[2, 3, 5]).unwrap();
    masked::gen_matmul(&mut dealer, &ra, &rb).unwrap();
    let [p0, p1] = dealer.finish();
    let (p0, p1) = (
        prifft::mpc::Preproc::from_bytes(&p0.to_bytes()).unwrap(),
        prifft::mpc::Preproc::from_bytes(&p1.to_bytes()).unwrap(),
    );
    let (a, b) = (random(&[2, 4, 3], 12), random(&[2, 3, 5], 13));
    let mut rng = insecure_seeded_rng(14);
    let (a, b) = (sharing::share_secret(&a, &mut rng), sharing::share_secret(&b, &mut rng));
    let party = |i: usize| {
        let (a, b) = (a[i].clone(), b[i].clone());
        move |ctx: &mut Ctx| -> Result<Share, MpcError> {
            let (ah, bh): (MaskedTensor, MaskedTensor) =
                (masked::mask(ctx, &a)?, masked::mask(ctx, &b)?);
            masked::matmul(ctx, &ah, &bh)
        }
    };
    let run = local::run_two_party([p0, p1], party(0), party(1)).unwrap();
    let want = product(
        &sharing::reconstruct(&a[0], &a[1]).unwrap(),
        &sharing::reconstruct(&b[0], &b[1]).unwrap(),
    );
    assert_eq!(sharing::reconstruct(&run.out0, &run.out1).unwrap(), want);
}

/// ReLU and DReLU straight on a masked tensor whose opening also feeds a masked product: one
/// opening (8 bytes per element) for all three, on `backend`; returns the raw output shares.
fn gates_on_a_masked_tensor(backend: Arc<dyn Backend>) -> Vec<Vec<u64>> {
    const WIDTH: u32 = 24;
    let (m, k, n) = (5, 6, 3);
    let mut rng = insecure_seeded_rng(20);
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> = [-half, -1, 0, 1, half - 1].map(|x| x as u64).to_vec();
    v.extend((v.len()..m * k).map(|_| rand::Rng::random_range(&mut rng, -half..half) as u64));
    let x = RingTensor::from_vec(&[m, k], v).unwrap();
    let w = random(&[k, n], 21);
    let mut dealer = Dealer::insecure_with_seed(22);
    let rx = masked::gen_mask(&mut dealer, &[m, k]).unwrap();
    let rw = masked::gen_mask(&mut dealer, &[k, n]).unwrap();
    masked::gen_relu(&mut dealer, WIDTH, &rx).unwrap();
    masked::gen_drelu(&mut dealer, WIDTH, &rx).unwrap();
    masked::gen_matmul(&mut dealer, &rx, &rw).unwrap();
    assert!(masked::gen_relu(&mut dealer, WIDTH, &rx).is_err(), "one set of ReLU keys per mask");
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let [w0, w1] = sharing::share_secret(&w, &mut rng);
    let party = |x: Share, w: Share| {
        move |ctx: &mut Ctx| {
            let xh = masked::mask(ctx, &x)?;
            let wh = masked::mask(ctx, &w)?;
            let c0 = ctx.mark();
            let relu = masked::relu(ctx, &xh, WIDTH)?;
            let sign = masked::drelu(ctx, &xh, WIDTH)?;
            let xw = masked::matmul(ctx, &xh, &wh)?;
            Ok::<_, MpcError>(([relu, sign, xw], ctx.mark() - c0))
        }
    };
    let run =
        local::run_parties(None, backend, dealer.finish(), party(x0, w0), party(x1, w1)).unwrap();
    let ([relu0, sign0, xw0], cost0) = run.out0;
    let ([relu1, sign1, xw1], cost1) = run.out1;
    let xs = x.as_slice();
    let want_relu: Vec<u64> = xs.iter().map(|&v| prifft::mpc::gates::relu::spec(v)).collect();
    let want_sign: Vec<u64> = xs.iter().map(|&v| u64::from((v as i64) >= 0)).collect();
    assert_eq!(sharing::reconstruct(&relu0, &relu1).unwrap().as_slice(), want_relu);
    assert_eq!(sharing::reconstruct(&sign0, &sign1).unwrap().as_slice(), want_sign);
    assert_eq!(sharing::reconstruct(&xw0, &xw1).unwrap(), x.matmul(&w).unwrap());
    for c in [cost0, cost1] {
        assert_eq!((c.bytes_sent, c.rounds), (0, 0), "the gates and the product are local");
    }
    [relu0, sign0, xw0, relu1, sign1, xw1].iter().map(|s| s.tensor().as_slice().to_vec()).collect()
}

#[test]
fn relu_and_drelu_run_on_a_masked_tensor_without_communication() {
    gates_on_a_masked_tensor(Arc::new(prifft::backend::Cpu));
}

#[cfg(feature = "gpu")]
#[test]
fn gates_on_a_masked_tensor_give_the_cpus_shares_on_the_gpu() {
    let Some(gpu) = common::gpu_device() else { return };
    let cpu = gates_on_a_masked_tensor(Arc::new(prifft::backend::Cpu));
    assert!(gates_on_a_masked_tensor(Arc::new(gpu)) == cpu, "GPU shares != CPU shares");
}

#[test]
fn gate_keys_made_for_another_mask_are_refused() {
    let mut dealer = Dealer::insecure_with_seed(23);
    let ra = masked::gen_mask(&mut dealer, &[4]).unwrap();
    // A second mask of the same shape: the parties' second `mask` takes it.
    let _rb = masked::gen_mask(&mut dealer, &[4]).unwrap();
    masked::gen_relu(&mut dealer, 16, &ra).unwrap();
    let [b0, b1] = sharing::share_secret(&random(&[4], 24), &mut insecure_seeded_rng(25));
    let party = |a: Share, b: Share| {
        move |ctx: &mut Ctx| -> Result<(), MpcError> {
            let _ah = masked::mask(ctx, &a)?;
            let bh = masked::mask(ctx, &b)?;
            let err = masked::relu(ctx, &bh, 16).unwrap_err();
            assert!(matches!(err, MpcError::Preproc(PreprocError::Unbound { .. })), "{err}");
            Ok(())
        }
    };
    let [a0, a1] = sharing::share_secret(&random(&[4], 26), &mut insecure_seeded_rng(27));
    local::run_two_party(dealer.finish(), party(a0, b0), party(a1, b1)).unwrap();
}

/// A degree-2 spline of four pieces with breakpoints −4096, 0 and 100,000 (ring units).
fn quadratic_spline(width: u32) -> prifft::mpc::gates::spline::Spline {
    prifft::mpc::gates::spline::Spline {
        width,
        breaks: vec![-4096, 0, 100_000],
        coeffs: vec![vec![7, 0, 0], vec![1, 3, 0], vec![0, 1, 1], vec![5, 2, 9]],
    }
}

#[test]
fn a_spline_and_an_exact_shift_run_on_one_masked_tensor_without_communication() {
    use prifft::mpc::gates::shift;
    const WIDTH: u32 = 24;
    let f = quadratic_spline(WIDTH);
    let mut rng = insecure_seeded_rng(30);
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> =
        [-half, -4097, -4096, -1, 0, 99_999, 100_000, half - 1].map(|x| x as u64).to_vec();
    v.extend((v.len()..300).map(|_| rand::Rng::random_range(&mut rng, -half..half) as u64));
    let x = RingTensor::from_vec(&[v.len()], v).unwrap();
    let mut dealer = Dealer::insecure_with_seed(31);
    let rx = masked::gen_mask(&mut dealer, x.shape()).unwrap();
    masked::gen_spline(&mut dealer, WIDTH, f.degree(), &rx).unwrap();
    masked::gen_shift(&mut dealer, WIDTH, 7, &rx).unwrap();
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let party = |x: Share| {
        let f = f.clone();
        move |ctx: &mut Ctx| {
            let xh = masked::mask(ctx, &x)?;
            let c0 = ctx.mark();
            let y = masked::spline(ctx, &f, &xh)?;
            let t = masked::ars(ctx, &xh, WIDTH, 7)?;
            Ok::<_, MpcError>((y, t, ctx.mark() - c0))
        }
    };
    let run = local::run_two_party(dealer.finish(), party(x0), party(x1)).unwrap();
    let ((y0, t0, c0), (y1, t1, c1)) = (run.out0, run.out1);
    let want_y: Vec<u64> = x.as_slice().iter().map(|&v| f.spec(v)).collect();
    let want_t: Vec<u64> = x.as_slice().iter().map(|&v| shift::ars_spec(v, WIDTH, 7)).collect();
    assert_eq!(sharing::reconstruct(&y0, &y1).unwrap().as_slice(), want_y);
    assert_eq!(sharing::reconstruct(&t0, &t1).unwrap().as_slice(), want_t);
    assert_eq!((c0.bytes_sent, c0.rounds, c1.bytes_sent, c1.rounds), (0, 0, 0, 0));
}

#[test]
fn an_interval_test_and_a_table_lookup_run_on_masked_tensors_without_communication() {
    const WIDTH: u32 = 20;
    const BITS: u32 = 6;
    let mut rng = insecure_seeded_rng(40);
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> = [-half, -101, -100, 0, 199, 200, half - 1].map(|x| x as u64).to_vec();
    v.extend((v.len()..200).map(|_| rand::Rng::random_range(&mut rng, -half..half) as u64));
    let x = RingTensor::from_vec(&[v.len()], v).unwrap();
    let idx: Vec<u64> = (0..100).map(|i| (i * 7 + 3) % (1 << BITS)).collect();
    let i = RingTensor::from_vec(&[idx.len()], idx).unwrap();
    let table: Vec<u64> = (0..1u64 << BITS).map(|t| t * t + 11).collect();
    let mut dealer = Dealer::insecure_with_seed(41);
    let rx = masked::gen_mask(&mut dealer, x.shape()).unwrap();
    let ri = masked::gen_mask(&mut dealer, i.shape()).unwrap();
    masked::gen_interval(&mut dealer, WIDTH, &rx).unwrap();
    masked::gen_lut(&mut dealer, BITS, &ri).unwrap();
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let [i0, i1] = sharing::share_secret(&i, &mut rng);
    let party = |x: Share, i: Share| {
        let table = table.clone();
        move |ctx: &mut Ctx| {
            let (xh, ih) = (masked::mask(ctx, &x)?, masked::mask(ctx, &i)?);
            let c0 = ctx.mark();
            let inside = masked::contains(ctx, &xh, WIDTH, (-100, 200))?;
            let looked = masked::lookup(ctx, BITS, &table, &ih)?;
            Ok::<_, MpcError>((inside, looked, ctx.mark() - c0))
        }
    };
    let run = local::run_two_party(dealer.finish(), party(x0, i0), party(x1, i1)).unwrap();
    let ((a0, l0, c0), (a1, l1, c1)) = (run.out0, run.out1);
    let want_a: Vec<u64> = x
        .as_slice()
        .iter()
        .map(|&v| prifft::mpc::gates::interval::spec(v, WIDTH, -100, 200))
        .collect();
    let want_l: Vec<u64> = i.as_slice().iter().map(|&v| table[v as usize]).collect();
    assert_eq!(sharing::reconstruct(&a0, &a1).unwrap().as_slice(), want_a);
    assert_eq!(sharing::reconstruct(&l0, &l1).unwrap().as_slice(), want_l);
    assert_eq!((c0.bytes_sent, c0.rounds, c1.bytes_sent, c1.rounds), (0, 0, 0, 0));
}

/// DReLU and ReLU from one-bit comparison keys on a masked tensor, for each width: the
/// reconstructions equal the specs, one round of ⌈len/8⌉ bytes each, and the keys are small.
/// Returns the raw output shares (for the GPU comparison).
fn compact_relu(backend: Arc<dyn Backend>) -> Vec<Vec<u64>> {
    let shape = [7, 19]; // 133 elements: the packed bits end inside a byte and a word
    let len = 133;
    let mut raw = Vec::new();
    for width in [2u32, 8, 9, 24, 64] {
        let mut rng = insecure_seeded_rng(40 + width as u64);
        let half = 1i128 << (width - 1);
        let mut v: Vec<u64> = [-half, -1, 0, 1, half - 1].map(|x| x as i64 as u64).to_vec();
        v.extend(
            (v.len()..len).map(|_| rand::Rng::random_range(&mut rng, -half..half) as i64 as u64),
        );
        let x = RingTensor::from_vec(&shape, v).unwrap();
        let mut dealer = Dealer::insecure_with_seed(41);
        let rx = masked::gen_mask(&mut dealer, &shape).unwrap();
        masked::gen_relu_cmp(&mut dealer, width, true, &rx).unwrap();
        masked::gen_relu_cmp(&mut dealer, width, false, &rx).unwrap();
        assert!(masked::gen_relu_cmp(&mut dealer, width, true, &rx).is_err(), "one set per mask");
        let [p0, p1] = dealer.finish();
        if width == 24 {
            // Mask share + ReLU item + DReLU item, per element and party (file bytes, headers
            // included): within the 0.5 KiB for ReLU alone.
            let per = p0.to_bytes().len() as f64 / len as f64;
            assert!(per < 2.0 * 320.0 + 16.0, "{per} B per element");
        }
        let [x0, x1] = sharing::share_secret(&x, &mut rng);
        let party = |x: Share| {
            move |ctx: &mut Ctx| {
                let xh = masked::mask(ctx, &x)?;
                let c0 = ctx.mark();
                let (y, d) = masked::relu_cmp(ctx, &xh, width)?;
                let c1 = ctx.mark();
                let d2 = masked::drelu_cmp(ctx, &xh, width)?;
                Ok::<_, MpcError>(([d, y, d2], [c1 - c0, ctx.mark() - c1]))
            }
        };
        let run =
            local::run_parties(None, backend.clone(), [p0, p1], party(x0), party(x1)).unwrap();
        let (s0, costs0) = run.out0;
        let (s1, costs1) = run.out1;
        let want_relu: Vec<u64> =
            x.as_slice().iter().map(|&v| prifft::mpc::gates::relu::spec(v)).collect();
        let want_sign: Vec<u64> =
            x.as_slice().iter().map(|&v| u64::from((v as i64) >= 0)).collect();
        assert_eq!(
            sharing::reconstruct(&s0[1], &s1[1]).unwrap().as_slice(),
            want_relu,
            "m {width}"
        );
        assert_eq!(
            sharing::reconstruct(&s0[0], &s1[0]).unwrap().as_slice(),
            want_sign,
            "m {width}"
        );
        assert_eq!(
            sharing::reconstruct(&s0[2], &s1[2]).unwrap().as_slice(),
            want_sign,
            "m {width}"
        );
        for c in costs0.iter().chain(&costs1) {
            assert_eq!((c.bytes_sent, c.rounds), (len.div_ceil(8) as u64, 1), "m {width}");
        }
        raw.extend(s0.iter().chain(&s1).map(|s| s.tensor().as_slice().to_vec()));
    }
    raw
}

#[test]
fn compact_relu_opens_one_masked_bit_per_element() {
    compact_relu(Arc::new(prifft::backend::Cpu));
}

#[cfg(feature = "gpu")]
#[test]
fn compact_relu_gives_the_cpus_shares_on_the_gpu_and_the_scheduler() {
    let Some(gpu) = common::gpu_device() else { return };
    let cpu = compact_relu(Arc::new(prifft::backend::Cpu));
    assert!(compact_relu(Arc::new(gpu)) == cpu, "GPU shares != CPU shares");
    let Some(gpu) = common::gpu_device() else { return };
    let s = prifft::backend::Scheduler::new(vec![Box::new(gpu), Box::new(prifft::backend::Cpu)])
        .with_weights(&[1.0, 1.0]);
    assert!(compact_relu(Arc::new(s)) == cpu, "scheduled shares != CPU shares");
}

#[test]
fn compact_relu_keys_for_another_mask_or_width_are_refused() {
    let mut dealer = Dealer::insecure_with_seed(43);
    let ra = masked::gen_mask(&mut dealer, &[4]).unwrap();
    let _rb = masked::gen_mask(&mut dealer, &[4]).unwrap();
    masked::gen_relu_cmp(&mut dealer, 16, true, &ra).unwrap();
    let party = |a: Share, b: Share| {
        move |ctx: &mut Ctx| -> Result<(), MpcError> {
            let ah = masked::mask(ctx, &a)?;
            let bh = masked::mask(ctx, &b)?;
            let err = masked::relu_cmp(ctx, &bh, 16).unwrap_err();
            assert!(matches!(err, MpcError::Preproc(PreprocError::Unbound { .. })), "{err}");
            let err = masked::relu_cmp(ctx, &ah, 17).unwrap_err();
            assert!(matches!(err, MpcError::Preproc(_)), "{err}");
            Ok(())
        }
    };
    let [a0, a1] = sharing::share_secret(&random(&[4], 44), &mut insecure_seeded_rng(45));
    let [b0, b1] = sharing::share_secret(&random(&[4], 46), &mut insecure_seeded_rng(47));
    local::run_two_party(dealer.finish(), party(a0, b0), party(a1, b1)).unwrap();
}

#[test]
fn logical_and_comparison_based_shifts_on_masked_tensors_match_their_specs() {
    use prifft::mpc::gates::shift;
    const WIDTH: u32 = 24;
    let mut rng = insecure_seeded_rng(50);
    let top = 1u64 << WIDTH;
    let mut u: Vec<u64> = vec![0, 1, 127, 128, top - 1];
    u.extend((u.len()..300).map(|_| rand::Rng::random_range(&mut rng, 0..top)));
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> = [-half, -129, -128, -1, 0, 127, half - 1].map(|x| x as u64).to_vec();
    v.extend((v.len()..300).map(|_| rand::Rng::random_range(&mut rng, -half..half) as u64));
    let (xu, xs) =
        (RingTensor::from_vec(&[300], u).unwrap(), RingTensor::from_vec(&[300], v).unwrap());
    let mut dealer = Dealer::insecure_with_seed(51);
    let ru = masked::gen_mask(&mut dealer, &[300]).unwrap();
    let rs = masked::gen_mask(&mut dealer, &[300]).unwrap();
    masked::gen_shift(&mut dealer, WIDTH, 7, &ru).unwrap();
    masked::gen_shift_cmp(&mut dealer, WIDTH, 7, &rs).unwrap();
    let [u0, u1] = sharing::share_secret(&xu, &mut rng);
    let [s0, s1] = sharing::share_secret(&xs, &mut rng);
    let party = |u: Share, s: Share| {
        move |ctx: &mut Ctx| {
            let uh = masked::mask(ctx, &u)?;
            let sh = masked::mask(ctx, &s)?;
            let c0 = ctx.mark();
            let a = masked::lrs(ctx, &uh, WIDTH, 7)?;
            let c1 = ctx.mark();
            let b = masked::ars_cmp(ctx, &sh, WIDTH, 7)?;
            Ok::<_, MpcError>((a, b, c1 - c0, ctx.mark() - c1))
        }
    };
    // Through the file format: range-mode shift keys and comparison-shift keys round-trip.
    let stores = dealer.finish().map(|p| prifft::mpc::Preproc::from_bytes(&p.to_bytes()).unwrap());
    let run = local::run_two_party(stores, party(u0, s0), party(u1, s1)).unwrap();
    let ((a0, b0, l0, m0), (a1, b1, l1, m1)) = (run.out0, run.out1);
    let want_a: Vec<u64> = xu.as_slice().iter().map(|&v| shift::lrs_spec(v, WIDTH, 7)).collect();
    let want_b: Vec<u64> = xs.as_slice().iter().map(|&v| shift::ars_spec(v, WIDTH, 7)).collect();
    assert_eq!(sharing::reconstruct(&a0, &a1).unwrap().as_slice(), want_a);
    assert_eq!(sharing::reconstruct(&b0, &b1).unwrap().as_slice(), want_b);
    for (l, m) in [(l0, m0), (l1, m1)] {
        assert_eq!((l.bytes_sent, l.rounds), (0, 0), "the logical shift is local");
        assert_eq!((m.bytes_sent, m.rounds), (300u64.div_ceil(8), 1), "one opened bit per element");
    }
}

#[test]
fn the_comparison_shift_is_exact_at_every_width_and_at_the_range_edges() {
    use prifft::mpc::gates::shift;
    for (width, s) in [(2u32, 1u32), (9, 8), (24, 7), (50, 24), (63, 30), (64, 16), (64, 63)] {
        let mut rng = insecure_seeded_rng(60 + width as u64);
        let half = 1i128 << (width - 1);
        let mut v: Vec<u64> =
            [-half, -half + 1, -1, 0, 1, half - 1].map(|x| x as i64 as u64).to_vec();
        v.extend(
            (v.len()..500).map(|_| rand::Rng::random_range(&mut rng, -half..half) as i64 as u64),
        );
        let x = RingTensor::from_vec(&[500], v).unwrap();
        let mut dealer = Dealer::insecure_with_seed(61);
        let rx = masked::gen_mask(&mut dealer, &[500]).unwrap();
        masked::gen_shift_cmp(&mut dealer, width, s, &rx).unwrap();
        let [x0, x1] = sharing::share_secret(&x, &mut rng);
        let party = |x: Share| {
            move |ctx: &mut Ctx| {
                let xh = masked::mask(ctx, &x)?;
                let c = ctx.mark();
                let y = masked::ars_cmp(ctx, &xh, width, s)?;
                Ok::<_, MpcError>((y, ctx.mark() - c))
            }
        };
        let run = local::run_two_party(dealer.finish(), party(x0), party(x1)).unwrap();
        let ((y0, c0), (y1, _)) = (run.out0, run.out1);
        let want: Vec<u64> = x.as_slice().iter().map(|&v| shift::ars_spec(v, width, s)).collect();
        assert_eq!(sharing::reconstruct(&y0, &y1).unwrap().as_slice(), want, "m {width} s {s}");
        let bits = if width == 64 { 1000u64 } else { 500 };
        assert_eq!(c0.bytes_sent, bits.div_ceil(8), "m {width}");
    }
}

#[test]
fn two_splines_with_the_same_breakpoints_share_one_comparison_key_and_its_opened_bits() {
    use prifft::mpc::gates::spline::Spline;
    const WIDTH: u32 = 24;
    let f = quadratic_spline(WIDTH);
    let g = Spline {
        coeffs: vec![vec![1, 1, 1], vec![0, 0, 4], vec![9, 9, 0], vec![2, 0, 1]],
        ..f.clone()
    };
    let mut rng = insecure_seeded_rng(32);
    let half = 1i64 << (WIDTH - 1);
    let mut v: Vec<u64> = [-half, -4097, -4096, -1, 0, 99_999, 100_000].map(|x| x as u64).to_vec();
    v.extend((v.len()..200).map(|_| rand::Rng::random_range(&mut rng, -half..half) as u64));
    let n = v.len();
    let x = RingTensor::from_vec(&[n], v).unwrap();
    let mut dealer = Dealer::insecure_with_seed(33);
    let rx = masked::gen_mask(&mut dealer, x.shape()).unwrap();
    masked::gen_cmp_spline_tagged(&mut dealer, &f, &rx, 0).unwrap();
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let party = |x: Share| {
        let (f, g) = (f.clone(), g.clone());
        move |ctx: &mut Ctx| {
            let xh = masked::mask(ctx, &x)?;
            let c0 = ctx.mark();
            let ys = masked::cmp_splines_tagged(ctx, &[&f, &g], &xh, 0)?;
            Ok::<_, MpcError>((ys, ctx.mark() - c0))
        }
    };
    let run = local::run_two_party(dealer.finish(), party(x0), party(x1)).unwrap();
    let ((y0, c0), (y1, c1)) = (run.out0, run.out1);
    for (k, s) in [&f, &g].into_iter().enumerate() {
        let want: Vec<u64> = x.as_slice().iter().map(|&v| s.spec(v)).collect();
        assert_eq!(sharing::reconstruct(&y0[k], &y1[k]).unwrap().as_slice(), want, "spline {k}");
    }
    // One round of one bit per inner breakpoint and element, for both splines together.
    let bytes = (3 * n as u64).div_ceil(8);
    assert_eq!((c0.bytes_sent, c0.rounds, c1.bytes_sent, c1.rounds), (bytes, 1, bytes, 1));
    // A second spline with other breakpoints is refused before anything is taken or sent.
    let mut dealer = Dealer::insecure_with_seed(34);
    let rx = masked::gen_mask(&mut dealer, x.shape()).unwrap();
    masked::gen_cmp_spline_tagged(&mut dealer, &f, &rx, 0).unwrap();
    let moved = Spline { breaks: vec![-4096, 1, 100_000], ..g.clone() };
    let [x0, x1] = sharing::share_secret(&x, &mut rng);
    let party = |x: Share| {
        let (f, moved) = (f.clone(), moved.clone());
        move |ctx: &mut Ctx| {
            let xh = masked::mask(ctx, &x)?;
            let err = masked::cmp_splines_tagged(ctx, &[&f, &moved], &xh, 0).unwrap_err();
            assert!(err.to_string().contains("breakpoints"), "{err}");
            Ok::<_, MpcError>(())
        }
    };
    local::run_two_party(dealer.finish(), party(x0), party(x1)).unwrap();
}
