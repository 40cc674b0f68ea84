/*
 * sizeclass.c: the table of size classes (see sizeclass.h).
 */
#include "sizeclass.h"

uint32_t class_size[NCLASSES];

/* clang-format off */
const uint8_t class_small[65] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8,          /* 16-byte steps to 128 */
    [9 ... 10] = 9,   [11 ... 12] = 10, /* 160, 192 */
    [13 ... 14] = 11, [15 ... 16] = 12, /* 224, 256 */
    [17 ... 20] = 13, [21 ... 24] = 14, /* 320, 384 */
    [25 ... 28] = 15, [29 ... 32] = 16, /* 448, 512 */
    [33 ... 40] = 17, [41 ... 48] = 18, /* 640, 768 */
    [49 ... 56] = 19, [57 ... 64] = 20, /* 896, 1024 */
};
/* clang-format on */

uint8_t aligned_next[8][NCLASSES];

void classes_init(void) {
    for (unsigned k = 0; k < NCLASSES; k++) {
        if (k <= 8) {
            class_size[k] = k ? k * 16 : 16;
        } else {
            unsigned e = 7 + (k - 9) / 4, j = (k - 9) % 4 + 1;
            class_size[k] = (1u << e) + (j << (e - 2));
        }
    }
    for (unsigned j = 0; j < 8; j++) {
        unsigned next = NCLASSES;
        for (unsigned k = NCLASSES; k-- > 0;) {
            if (class_size[k] % (32u << j) == 0) next = k;
            aligned_next[j][k] = (uint8_t)next;
        }
    }
}
