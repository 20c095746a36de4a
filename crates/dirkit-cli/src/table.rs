//! Rendering rows of cells as aligned text, CSV or Markdown.

/// Column alignment in text and Markdown tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right (text).
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// A header and rows of already formatted cells.
pub struct Grid {
    /// Column names.
    pub header: Vec<String>,
    /// Alignment per column.
    pub align: Vec<Align>,
    /// Cells, one vector per row.
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    /// An empty grid with the given columns, numbers right-aligned except the first.
    pub fn new(header: &[&str]) -> Self {
        let align = (0..header.len())
            .map(|i| if i == 0 { Align::Left } else { Align::Right })
            .collect();
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            align,
            rows: Vec::new(),
        }
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        w
    }

    fn pad(cell: &str, width: usize, align: Align) -> String {
        match align {
            Align::Left => format!("{cell:<width$}"),
            Align::Right => format!("{cell:>width$}"),
        }
    }

    /// Space-separated columns with a dashed rule under the header.
    pub fn text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| Self::pad(c, w[i], self.align[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(
            &w.iter()
                .map(|&n| "-".repeat(n))
                .collect::<Vec<_>>()
                .join("  "),
        );
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }

    /// A Markdown pipe table.
    pub fn markdown(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let inner: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| Self::pad(c, w[i], self.align[i]))
                .collect();
            format!("| {} |\n", inner.join(" | "))
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = w
            .iter()
            .zip(&self.align)
            .map(|(&n, a)| match a {
                Align::Left => format!(":{}", "-".repeat(n.max(2) - 1)),
                Align::Right => format!("{}:", "-".repeat(n.max(2) - 1)),
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }

    /// CSV with the header line; cells are quoted when they contain a comma or quote.
    pub fn csv(&self) -> String {
        let quote = |c: &String| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            out.push_str(&r.iter().map(quote).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

/// A number with `sig` significant digits for people (no exponent for ordinary magnitudes).
pub fn human(x: f64, sig: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        return format!("{:.*e}", sig.saturating_sub(1), x);
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A label-valued number: integers print without decimals, others with up to 6.
pub fn label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 1e15 || x.abs() < 1e-4 {
        // Scientific, not hundreds of digits (1e308) or a run of zeros (5e-324).
        format!("{x:e}")
    } else {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
