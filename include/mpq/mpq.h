/**
 * @file mpq.h
 * @brief Umbrella header: includes every libmpq module header.
 * @since 0.1.0
 */
#ifndef MPQ_MPQ_H
#define MPQ_MPQ_H

#include <mpq/core.h>
#include <mpq/fakequant.h>
#include <mpq/model.h>
#include <mpq/quantizer.h>
#include <mpq/hwmodel.h>
#include <mpq/agent.h>
#include <mpq/runtime.h>
#include <mpq/search.h>

#endif /* MPQ_MPQ_H */
