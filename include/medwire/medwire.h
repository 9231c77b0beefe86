/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file medwire.h
 * @brief The whole public API of medwire.
 *
 * @code
 * #include <medwire/medwire.h>
 * printf("%s\n", mw_strerror(MW_ECERT_EXPIRED));
 * @endcode
 */
#ifndef MEDWIRE_H
#define MEDWIRE_H

#include "medwire/err.h"
#include "medwire/io.h"
#include "medwire/message.h"
#include "medwire/terms.h"
#include "medwire/audit.h"
#include "medwire/fhir.h"
#include "medwire/client.h"
#include "medwire/gateway.h"

#endif
