#!/usr/bin/env node
import { main } from '../lib/cli';

void main(process.argv.slice(2));
