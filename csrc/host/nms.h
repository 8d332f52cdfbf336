// Host-side post-processing shared by the task models: greedy non-maximum suppression.
#pragma once

#include <cstdint>
#include <vector>

namespace hbdk::host {

// Greedy non-maximum suppression of n axis-aligned boxes (x1, y1, x2, y2 per row). Boxes are visited
// by descending score, ties by ascending index; a box is kept unless an already kept box of the same
// class overlaps it with IoU > iouThreshold (IoU = intersection / union in double precision, 0 when
// the union is empty; a box with x2 < x1 or y2 < y1 has no area). `classes` may be null (one class).
// Returns the kept indices in visiting order, at most maxKeep of them when maxKeep >= 0. Throws
// std::invalid_argument for a non-finite score or coordinate or a threshold outside [0, 1].
std::vector<int64_t> nms(const float* boxes, const float* scores, const int64_t* classes, int64_t n,
                         double iouThreshold, int64_t maxKeep = -1);

}  // namespace hbdk::host
