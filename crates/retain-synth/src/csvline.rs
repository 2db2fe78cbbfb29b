//! A minimal CSV line builder: the synthetic operator writes tens of millions of rows, and
//! formatting straight into a byte buffer keeps that fast.

use std::io::Write as _;

use chrono::NaiveDate;

#[derive(Default)]
pub(crate) struct Line {
    buf: Vec<u8>,
    fields: usize,
}

impl Line {
    fn sep(&mut self) {
        if self.fields > 0 {
            self.buf.push(b',');
        }
        self.fields += 1;
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.sep();
        if value.contains([',', '"', '\n', '\r']) {
            self.buf.push(b'"');
            self.buf
                .extend_from_slice(value.replace('"', "\"\"").as_bytes());
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(value.as_bytes());
        }
        self
    }

    pub(crate) fn int(&mut self, value: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{value}");
        self
    }

    /// Two decimals: money and volumes as billing systems print them.
    pub(crate) fn float(&mut self, value: f64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{value:.2}");
        self
    }

    pub(crate) fn date(&mut self, value: NaiveDate) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{}", value.format("%Y-%m-%d"));
        self
    }

    pub(crate) fn finish(&mut self) -> &[u8] {
        self.buf.push(b'\n');
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_joined_and_quoted() {
        let mut line = Line::default();
        line.int(7)
            .text("a,b")
            .float(1.005)
            .date(NaiveDate::from_ymd_opt(2025, 3, 1).unwrap());
        assert_eq!(line.finish(), b"7,\"a,b\",1.00,2025-03-01\n");
    }
}
