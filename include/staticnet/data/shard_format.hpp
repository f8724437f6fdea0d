#pragma once
/// @file
/// The shard file format: one checksummed binary file of samples and labels, its layout
/// (`shard_layout.hpp`), writer (`shard_writer.hpp`) and reader and verifier
/// (`shard_reader.hpp`). How a data set is cut into a *set* of shard files and spread over
/// ranks is in `shard_set.hpp`.

#include "shard_layout.hpp"
#include "shard_reader.hpp"
#include "shard_writer.hpp"
