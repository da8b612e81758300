// SPDX-License-Identifier: Apache-2.0
// The statistics the bench reports. Medians rather than means: one run disturbed by another job
// on the machine moves a mean but not a median.

/** the middle value, or the mean of the two middle ones (NaN for no values) */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** [lowest, highest] */
export const range = (xs) => [Math.min(...xs), Math.max(...xs)];

/** how many percent a ratio is above 1 */
export const percentOver = (ratio) => (ratio - 1) * 100;
