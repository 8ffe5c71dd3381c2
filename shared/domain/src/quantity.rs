//! Quantity rules shared by every command that moves stock.

use crate::Error;

/// The largest quantity (or absolute adjustment) one command may carry.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// A positive quantity within [`MAX_QUANTITY`].
pub fn quantity(raw: i64) -> Result<u64, Error> {
    if (1..=MAX_QUANTITY).contains(&raw) {
        Ok(raw.unsigned_abs())
    } else {
        Err(Error::InvalidQuantity(format!(
            "{raw} is not between 1 and {MAX_QUANTITY}"
        )))
    }
}

/// A non-zero signed stock adjustment within ±[`MAX_QUANTITY`].
pub fn delta(raw: i64) -> Result<i64, Error> {
    if raw != 0 && raw.unsigned_abs() <= MAX_QUANTITY.unsigned_abs() {
        Ok(raw)
    } else {
        Err(Error::InvalidQuantity(format!(
            "delta {raw} must be non-zero and within ±{MAX_QUANTITY}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_positive_and_bounded() {
        assert_eq!(quantity(1), Ok(1));
        assert_eq!(quantity(MAX_QUANTITY), Ok(1_000_000_000));
        for bad in [0, -1, MAX_QUANTITY + 1, i64::MIN] {
            assert!(quantity(bad).is_err());
        }
        assert_eq!(delta(-5), Ok(-5));
        assert!(delta(0).is_err());
        assert!(delta(i64::MIN).is_err());
    }
}
