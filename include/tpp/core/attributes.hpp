#pragma once
// TPP_FLATTEN: [[gnu::flatten]] on a row loop, so that everything it calls (xsimd's exp, the policy's mul,
// an op's functor) is inlined into it: GCC 12 otherwise keeps large callees out of line and pays a call
// per vector (softmax's exp, quantize's row chunks). Empty under AddressSanitizer, which instruments every
// inlined temporary: flattened loops then take tens of minutes and gigabytes to compile (quantize's int8
// tests: over 20 minutes and 9.7 GB; softmax's: 10 minutes and 8 GB), and a sanitizer build is about
// correctness, not speed.

#if defined(__SANITIZE_ADDRESS__)
#define TPP_FLATTEN
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TPP_FLATTEN
#endif
#endif
#ifndef TPP_FLATTEN
#define TPP_FLATTEN [[gnu::flatten]]
#endif
