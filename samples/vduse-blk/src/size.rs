// SPDX-License-Identifier: GPL-2.0
//! Byte sizes with binary suffixes: `4096`, `64M`, `1G`, `512k`, `2GiB`.

/// Parse a size; suffixes K/M/G/T (optionally followed by `iB` or `B`) are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suf) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("invalid size '{s}'"));
    }
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let shift = match suf.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("invalid size suffix in '{s}'")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size '{s}' too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
