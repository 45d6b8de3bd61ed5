/*
 * quant_grids.h - the codebooks ("grids") and sign table of the IQ block
 * formats: the numbers a stored index stands for.
 *
 * Owns: read-only tables only (facts of the formats, equal to ggml's
 * tables of the same meaning). No functions, no state. Used by the
 * references in quant_iq_ref.c and the SIMD kernels in quant_iq_avx2.c /
 * quant_iq_avx512.c.
 *
 * Layouts (byte j of an entry is element j of its group, little-endian):
 * - quant_iq2xxs_grid[256], quant_iq2xs_grid[512], quant_iq2s_grid[1024]:
 *   8 unsigned magnitudes per entry, each 8, 25 or 43.
 * - quant_iq3xxs_grid[256]: 4 unsigned magnitudes per entry, 4..62.
 *   (IQ3_S's grid is quant_iq3s_grid in quant_ref.h.)
 * - quant_iq1s_grid[2048]: 8 signed bytes per entry, each -1, 0 or +1
 *   (shared by IQ1_S and IQ1_M).
 * - quant_ksigns_iq2xs[128]: a 7-bit sign index -> 8 sign bits (bit j set:
 *   element j negative); bit 7 is the parity of the low 7, so every group
 *   has an even number of negative elements.
 */
#ifndef MOESTREAM_QUANT_GRIDS_H
#define MOESTREAM_QUANT_GRIDS_H

#include <stdint.h>

extern const uint64_t quant_iq2xxs_grid[256];
extern const uint64_t quant_iq2xs_grid[512];
extern const uint64_t quant_iq2s_grid[1024];
extern const uint32_t quant_iq3xxs_grid[256];
extern const uint64_t quant_iq1s_grid[2048];
extern const uint8_t quant_ksigns_iq2xs[128];

#endif
