//! Signed-distance primitives of the face renderer, in plain f32 arithmetic (`sqrt` is the only
//! function used, and IEEE-754 rounds it correctly, so results are the same on every platform).

/// `0` below `a`, `1` above `b`, a cubic smoothstep in between (`a < b`).
pub(crate) fn ramp(x: f32, a: f32, b: f32) -> f32 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Approximate signed distance to the ellipse with semi-axes `a`, `b` centred at the origin
/// (negative inside): the implicit function over its gradient, exact on the boundary.
pub(crate) fn ellipse(x: f32, y: f32, a: f32, b: f32) -> f32 {
    let (xa, yb) = (x / a, y / b);
    let k = (xa * xa + yb * yb).sqrt();
    let g = (xa * xa / (a * a) + yb * yb / (b * b)).sqrt();
    if g < 1e-6 {
        -a.min(b)
    } else {
        (k - 1.0) * k / g
    }
}

/// Distance from `(x, y)` to the segment `(x0, y0)`–`(x1, y1)`.
pub(crate) fn segment(x: f32, y: f32, x0: f32, y0: f32, x1: f32, y1: f32) -> f32 {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let (px, py) = (x - x0, y - y0);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (px - t * dx, py - t * dy);
    (ex * ex + ey * ey).sqrt()
}

/// Approximate distance to the parabolic arc `y = y0 + k (x - x0)²` for `|x - x0| ≤ half`.
pub(crate) fn arc(x: f32, y: f32, x0: f32, y0: f32, half: f32, k: f32) -> f32 {
    let dx = (x - x0).clamp(-half, half);
    let fy = y0 + k * dx * dx;
    let slope = 2.0 * k * dx;
    let ex = x - x0 - dx;
    let ey = (y - fy) / (1.0 + slope * slope).sqrt();
    (ex * ex + ey * ey).sqrt()
}
