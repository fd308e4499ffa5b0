//! Colour on a terminal: [`Style`] paints a word with an ANSI code, or leaves it plain.

/// ANSI colours, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// `s` in the ANSI colour `code` (`1;31` is bold red), or `s` itself without colour.
    pub fn paint(&self, s: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}
