#include "host/nms.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace hbdk::host {

namespace {

struct Box {
  double x1, y1, x2, y2, area;
};

Box makeBox(const float* b) {
  Box box{b[0], b[1], b[2], b[3], 0.0};
  box.area = std::max(0.0, box.x2 - box.x1) * std::max(0.0, box.y2 - box.y1);
  return box;
}

double iou(const Box& a, const Box& b) {
  const double w = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const double h = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (w <= 0.0 || h <= 0.0) return 0.0;
  const double inter = w * h;
  const double uni = a.area + b.area - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

}  // namespace

std::vector<int64_t> nms(const float* boxes, const float* scores, const int64_t* classes, int64_t n,
                         double iouThreshold, int64_t maxKeep) {
  if (!(iouThreshold >= 0.0 && iouThreshold <= 1.0))
    throw std::invalid_argument("nms: iou_threshold must be in [0, 1] but got " + std::to_string(iouThreshold));
  if (n < 0) throw std::invalid_argument("nms: negative box count");
  for (int64_t i = 0; i < n; ++i) {
    bool finite = std::isfinite(scores[i]);
    for (int k = 0; k < 4; ++k) finite = finite && std::isfinite(boxes[4 * i + k]);
    if (!finite) throw std::invalid_argument("nms: box " + std::to_string(i) + " has a non-finite score or coordinate");
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  // The kept boxes of each class: a candidate is compared with those of its own class only.
  std::unordered_map<int64_t, std::vector<Box>> kept;
  std::vector<int64_t> result;
  for (int64_t i : order) {
    if (maxKeep >= 0 && static_cast<int64_t>(result.size()) >= maxKeep) break;
    const Box box = makeBox(boxes + 4 * i);
    auto& same = kept[classes ? classes[i] : 0];
    const bool suppressed =
        std::any_of(same.begin(), same.end(), [&](const Box& k) { return iou(k, box) > iouThreshold; });
    if (suppressed) continue;
    same.push_back(box);
    result.push_back(i);
  }
  return result;
}

}  // namespace hbdk::host
