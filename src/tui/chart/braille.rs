//! A braille dot grid (2×4 dots per cell) with per-cell style and layers. Ratatui's `Canvas` only
//! carries a foreground colour per cell; this keeps the caller's whole `Style` (so the raw line can be
//! DIM) and lets a later layer replace, not merge with, the cells it touches.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// Bit of each dot in a braille cell, indexed `[row][col]` (Unicode's dot numbering).
const BITS: [[u8; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];

#[derive(Clone, Copy, Default)]
struct Cell {
    bits: u8,
    layer: u8,
    style: u16,
}

pub(crate) struct BrailleGrid {
    width: usize,
    height: usize,
    cells: Vec<Cell>,
}

impl BrailleGrid {
    pub fn new(width: u16, height: u16) -> Self {
        let (width, height) = (usize::from(width), usize::from(height));
        BrailleGrid {
            width,
            height,
            cells: vec![Cell::default(); width * height],
        }
    }

    /// Size in dots.
    pub fn dots(&self) -> (usize, usize) {
        (self.width * 2, self.height * 4)
    }

    /// Sets one dot. Within a layer dots merge and the last style wins; a higher layer first wipes what
    /// lower layers left in the cell.
    pub fn paint(&mut self, x: usize, y: usize, layer: u8, style: u16) {
        let (cx, cy) = (x / 2, y / 4);
        if cx >= self.width || cy >= self.height {
            return;
        }
        let cell = &mut self.cells[cy * self.width + cx];
        if layer > cell.layer {
            cell.bits = 0;
            cell.layer = layer;
        } else if layer < cell.layer {
            return;
        }
        cell.bits |= BITS[y % 4][x % 2];
        cell.style = style;
    }

    /// A line between two points in dot coordinates (x right, y down), clipped to the grid.
    pub fn line(&mut self, a: [f64; 2], b: [f64; 2], layer: u8, style: u16) {
        let (w, h) = self.dots();
        if w == 0 || h == 0 {
            return;
        }
        let Some((a, b)) = clip(a, b, (w - 1) as f64, (h - 1) as f64) else {
            return;
        };
        let r = |v: f64| v.round() as i64;
        let (mut x, mut y, x1, y1) = (r(a[0]), r(a[1]), r(b[0]), r(b[1]));
        // Bresenham over all octants.
        let (dx, dy) = ((x1 - x).abs(), -(y1 - y).abs());
        let (sx, sy) = ((x1 - x).signum(), (y1 - y).signum());
        let mut err = dx + dy;
        loop {
            self.paint(x as usize, y as usize, layer, style);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Writes the non-empty cells into `area` (which must match the grid size), leaving others alone.
    pub fn render(&self, area: Rect, buf: &mut Buffer, styles: &[Style]) {
        for (i, cell) in self.cells.iter().enumerate() {
            if cell.bits == 0 {
                continue;
            }
            let (x, y) = ((i % self.width) as u16, (i / self.width) as u16);
            let ch = char::from_u32(0x2800 + u32::from(cell.bits)).unwrap_or(' ');
            let style = styles
                .get(usize::from(cell.style))
                .copied()
                .unwrap_or_default();
            buf[(area.x + x, area.y + y)].set_char(ch).set_style(style);
        }
    }
}

/// Liang–Barsky clipping of segment `a`–`b` to `[0, xmax] × [0, ymax]`.
fn clip(a: [f64; 2], b: [f64; 2], xmax: f64, ymax: f64) -> Option<([f64; 2], [f64; 2])> {
    if !(a[0].is_finite() && a[1].is_finite() && b[0].is_finite() && b[1].is_finite()) {
        return None;
    }
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a[0]),
        (dx, xmax - a[0]),
        (-dy, a[1]),
        (dy, ymax - a[1]),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    let at = |t: f64| [a[0] + t * dx, a[1] + t * dy];
    Some((at(t0), at(t1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_inside_and_cuts_crossing() {
        assert_eq!(
            clip([1.0, 1.0], [2.0, 2.0], 10.0, 10.0),
            Some(([1.0, 1.0], [2.0, 2.0]))
        );
        let (a, b) = clip([-10.0, 5.0], [20.0, 5.0], 10.0, 10.0).unwrap();
        assert_eq!((a, b), ([0.0, 5.0], [10.0, 5.0]));
        assert_eq!(clip([-5.0, -5.0], [-1.0, -1.0], 10.0, 10.0), None);
        assert_eq!(clip([0.0, f64::NAN], [1.0, 1.0], 10.0, 10.0), None);
    }

    #[test]
    fn layers_replace_and_dots_merge() {
        let mut g = BrailleGrid::new(1, 1);
        g.paint(0, 0, 0, 1);
        g.paint(1, 3, 0, 2);
        assert_eq!(g.cells[0].bits, 0x01 | 0x80);
        assert_eq!(g.cells[0].style, 2);
        g.paint(1, 0, 1, 3);
        assert_eq!(g.cells[0].bits, 0x08);
        // A lower layer cannot draw over a higher one.
        g.paint(0, 1, 0, 1);
        assert_eq!((g.cells[0].bits, g.cells[0].style), (0x08, 3));
    }
}
