#pragma once
// Sparse x dense and dense x sparse products with the multiply policy, the sparse formats they take,
// magnitude pruning from dense, and complementary sparsity. The umbrella of ops/sparse/, one header per
// format or concern (owning structs, std::vector storage, fp32 values; every op validates the one it is
// given):
//
//   formats
//     sparse/csr.hpp            csr_matrix: compressed sparse rows
//     sparse/bcsr.hpp           bcsr_matrix: CSR of r x c dense blocks (block_shape), and its register-
//                               blocked vector tile
//     sparse/nm.hpp             nm_matrix: N:M structured, N kept of every M columns (2:4, 1:4)
//     sparse/codebook.hpp       codebook_matrix: EIE weight sharing, 4-bit codes into 16-entry tables per
//                               block of rows; to_codebook(csr, codebook_params) (k-means per block)
//     sparse/formats.hpp        sparse_format (the four above), to_dense(S, out)
//   conversions
//     sparse/prune.hpp          prune_params; prune_to_csr, prune_to_bcsr, prune_to_nm, prune_to_codebook:
//                               magnitude pruning of a dense view, by sparsity or threshold
//   products
//     sparse/product.hpp        sparse_params; sparse_kernel<Policy, Format> (made once for S, called
//                               with views and an optional workspace), the OpenMP drivers sparse_dense
//                               (C = alpha S B + beta C) and dense_sparse (C = alpha A W^T + beta C)
//     sparse/panels.hpp         the k-panel layout of CSR, N:M and codebook operands and its vector tile
//     sparse/zero_skipping.hpp  EIE's zero-activation skipping (sparse_params::skip_zero_activations)
//     sparse/complementary.hpp  complementary_matrix: pack_complementary, unpack_part, complementary_product
//   sparse/common.hpp           what they share: validation, the product step and output scaling, lanes,
//                               B's copies, scratch regions
//
//   const csr_matrix S = prune_to_csr(A, prune_params::by_sparsity(0.9));  // keeps the 10% largest |a|
//   sparse_dense<approx::mitchell<7>>(S, B, C);                            // C = S B, every product P(s, b)
//   const sparse_kernel<approx::exact, bcsr_matrix> k(W, {1.0f, 1.0f});    // W (N, K) in 4x4 blocks, say
//   k.dense_sparse(X, Y);                                                  // Y (M, N) += X (M, K) W^T

#include "sparse/bcsr.hpp"
#include "sparse/codebook.hpp"
#include "sparse/common.hpp"
#include "sparse/complementary.hpp"
#include "sparse/csr.hpp"
#include "sparse/formats.hpp"
#include "sparse/nm.hpp"
#include "sparse/panels.hpp"
#include "sparse/product.hpp"
#include "sparse/prune.hpp"
#include "sparse/zero_skipping.hpp"
