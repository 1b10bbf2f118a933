/**
 * The product's version, reported by `--version`, in registrations and in
 * the `pushprox_build_info` metric.
 *
 * @module
 */

/** The release version. */
export const VERSION = "0.1.0";
