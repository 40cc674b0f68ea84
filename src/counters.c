/*
 * counters.c: the process-wide counters (see counters.h).
 */
#include "counters.h"

struct counters ma_counters;
