// 1D NMS and soft-NMS kernels. All arithmetic is float32, in the same order as
// the pure-PyTorch fallback (opentad/models/utils/post_processing/nms/nms_torch.py),
// which documents the semantics. Build with -ffp-contract=off so that no
// multiply-add is fused.
#include "nms_1d.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "../common.h"

namespace opentad {
namespace {

void check_inputs(const at::Tensor& segs, const at::Tensor& scores) {
  OPENTAD_CHECK_CPU(segs);
  OPENTAD_CHECK_CPU(scores);
  TORCH_CHECK(segs.dim() == 2 && segs.size(1) == 2, "segs must be [N, 2], got ", segs.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == segs.size(0), "scores must be [N] with N = ", segs.size(0),
              ", got ", scores.sizes());
  TORCH_CHECK(segs.scalar_type() == at::kFloat && scores.scalar_type() == at::kFloat,
              "segs and scores must be float32, got ", segs.scalar_type(), " and ", scores.scalar_type());
}

// IoU with the +1e-6 lengths precomputed; max/min written as the comparisons
// std::max / std::min make, so NaN behaves the same everywhere.
inline float overlap(float ax1, float ax2, float alen, float bx1, float bx2, float blen) {
  const float left = std::max(ax1, bx1);
  const float right = std::min(ax2, bx2);
  const float inter = std::max(0.f, right - left);
  return inter / (alen + blen - inter);
}

inline float decay(float ovr, float chosen_len, int64_t method, float thr, float sigma, float t1, float t2) {
  switch (method) {
    case 0:
      return ovr >= thr ? 0.f : 1.f;
    case 1:
      return ovr >= thr ? 1.f - ovr : 1.f;
    case 2:
      return std::exp(-(ovr * ovr) / sigma);
    case 3:
      return ovr >= t1 + t2 * chosen_len ? std::exp(-(ovr * ovr) / sigma) : 1.f;
    default:
      return 1.f;
  }
}

}  // namespace

at::Tensor nms_1d_cpu(const at::Tensor& segs_in, const at::Tensor& scores_in, double iou_threshold,
                      int64_t max_num) {
  check_inputs(segs_in, scores_in);
  const at::Tensor segs = segs_in.contiguous();
  const at::Tensor scores = scores_in.contiguous();
  const int64_t n = segs.size(0);
  if (n == 0) return at::empty({0}, segs.options().dtype(at::kLong));
  // the same sort as torch.sort(scores, descending=True): same order of ties
  const at::Tensor order_t = std::get<1>(scores.sort(0, /*descending=*/true)).contiguous();
  const int64_t* order = order_t.data_ptr<int64_t>();
  const float* s = segs.data_ptr<float>();
  std::vector<float> len(n);
  for (int64_t i = 0; i < n; ++i) len[i] = (s[2 * i + 1] - s[2 * i]) + 1e-6f;

  const float thr = static_cast<float>(iou_threshold);
  std::vector<char> removed(n, 0);
  std::vector<int64_t> kept;
  for (int64_t a = 0; a < n; ++a) {
    if (removed[a]) continue;
    if (max_num > 0 && static_cast<int64_t>(kept.size()) >= max_num) break;
    const int64_t i = order[a];
    kept.push_back(i);
    for (int64_t b = a + 1; b < n; ++b) {
      if (removed[b]) continue;
      const int64_t j = order[b];
      if (overlap(s[2 * i], s[2 * i + 1], len[i], s[2 * j], s[2 * j + 1], len[j]) >= thr) removed[b] = 1;
    }
  }
  at::Tensor out = at::empty({static_cast<int64_t>(kept.size())}, segs.options().dtype(at::kLong));
  std::copy(kept.begin(), kept.end(), out.data_ptr<int64_t>());
  return out;
}

std::tuple<at::Tensor, at::Tensor> softnms_1d_cpu(const at::Tensor& segs_in, const at::Tensor& scores_in,
                                                  double iou_threshold, double sigma, double min_score,
                                                  int64_t method, double t1, double t2, int64_t max_num) {
  check_inputs(segs_in, scores_in);
  const at::Tensor segs = segs_in.contiguous();
  const at::Tensor scores = scores_in.contiguous();
  const int64_t n = segs.size(0);
  const float* s = segs.data_ptr<float>();
  const float* p = scores.data_ptr<float>();
  // working columns; entries are swapped and moved exactly as described in nms_torch.py
  std::vector<float> x1(n), x2(n), sc(n), len(n);
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) {
    x1[i] = s[2 * i];
    x2[i] = s[2 * i + 1];
    sc[i] = p[i];
    len[i] = (x2[i] - x1[i]) + 1e-6f;
    idx[i] = i;
  }
  const float thr = static_cast<float>(iou_threshold), sig = static_cast<float>(sigma);
  const float floor = static_cast<float>(min_score), ft1 = static_cast<float>(t1), ft2 = static_cast<float>(t2);
  auto move = [&](int64_t to, int64_t from) {
    x1[to] = x1[from];
    x2[to] = x2[from];
    sc[to] = sc[from];
    len[to] = len[from];
    idx[to] = idx[from];
  };
  std::vector<float> dets;
  std::vector<int64_t> picked;
  int64_t live = n;
  for (int64_t i = 0; i < live && (max_num <= 0 || i < max_num); ++i) {
    int64_t best = i;
    for (int64_t q = i + 1; q < live; ++q) {
      if (sc[best] < sc[q]) best = q;
    }
    std::swap(x1[i], x1[best]);
    std::swap(x2[i], x2[best]);
    std::swap(sc[i], sc[best]);
    std::swap(len[i], len[best]);
    std::swap(idx[i], idx[best]);
    dets.insert(dets.end(), {x1[i], x2[i], sc[i]});
    picked.push_back(idx[i]);
    for (int64_t q = i + 1; q < live;) {
      const float ovr = overlap(x1[i], x2[i], len[i], x1[q], x2[q], len[q]);
      sc[q] *= decay(ovr, len[i], method, thr, sig, ft1, ft2);
      if (sc[q] < floor) {
        move(q, live - 1);  // examine the moved entry at q next
        --live;
      } else {
        ++q;
      }
    }
  }
  const int64_t k = static_cast<int64_t>(picked.size());
  at::Tensor out_dets = at::empty({k, 3}, segs.options());
  at::Tensor out_inds = at::empty({k}, segs.options().dtype(at::kLong));
  std::copy(dets.begin(), dets.end(), out_dets.data_ptr<float>());
  std::copy(picked.begin(), picked.end(), out_inds.data_ptr<int64_t>());
  return std::make_tuple(out_dets, out_inds);
}

}  // namespace opentad
