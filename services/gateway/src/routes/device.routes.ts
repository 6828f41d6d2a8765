import {
  CreateDeviceBody,
  CreatePairingTokenBody,
  Device,
  DeviceIdParams,
  DeviceListQuery,
  DevicePage,
  DeviceTokenList,
  DeviceTokenParams,
  deviceRpc,
  IssuedDeviceToken,
  PairingToken,
  RedeemPairingBody,
  UpdateDeviceBody,
} from '@ferry/contracts';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Devices'];

export const deviceRoutes = [
  defineRoute({
    method: 'POST',
    path: '/devices',
    operationId: 'createDevice',
    summary: 'Register a device',
    tags,
    roles: WRITERS,
    body: CreateDeviceBody,
    idempotent: true,
    responses: { 201: { description: 'Registered.', schema: Device } },
    errors: { 409: 'A live device of the organization already has this device_id (`name_taken`).' },
    async handle({ body }, { rpc, call }) {
      const device = await rpc.call(deviceRpc.create, { device: body }, call);
      return created(device, `/api/v1/devices/${device.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/devices',
    operationId: 'listDevices',
    summary: 'List devices',
    tags,
    roles: READERS,
    query: DeviceListQuery,
    responses: { 200: { description: 'A page of devices.', schema: DevicePage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(deviceRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/devices/:id',
    operationId: 'getDevice',
    summary: 'Get a device',
    tags,
    roles: READERS,
    params: DeviceIdParams,
    responses: { 200: { description: 'The device.', schema: Device } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(deviceRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/devices/:id',
    operationId: 'updateDevice',
    summary: 'Update a device',
    tags,
    roles: WRITERS,
    params: DeviceIdParams,
    body: UpdateDeviceBody,
    idempotent: true,
    responses: { 200: { description: 'The updated device.', schema: Device } },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(deviceRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/devices/:id',
    operationId: 'deleteDevice',
    summary: 'Delete a device',
    description:
      'Soft delete: every token of the device is revoked in the same transaction; the device_id can be registered again.',
    tags,
    roles: WRITERS,
    params: DeviceIdParams,
    responses: { 204: { description: 'Deleted.' } },
    async handle({ params }, { rpc, call }) {
      await rpc.call(deviceRpc.delete, params, call);
      return noContent();
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/devices/:id/pairing-tokens',
    operationId: 'createPairingToken',
    summary: 'Create a pairing token for a device',
    description:
      'A short-lived (default 10 min), single-use token, shown once. Give it to the device: it exchanges it for its ' +
      'own device token at `POST /device-tokens`, with no other credential.',
    tags,
    roles: ['admin'],
    params: DeviceIdParams,
    body: CreatePairingTokenBody,
    responses: { 201: { description: 'The pairing token (shown once).', schema: PairingToken } },
    async handle({ params, body }, { rpc, call }) {
      return created(
        await rpc.call(deviceRpc.createPairingToken, { id: params.id, ttl_seconds: body.ttl_seconds }, call),
      );
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/device-tokens',
    operationId: 'redeemPairingToken',
    summary: 'Exchange a pairing token for a device token',
    description:
      'Called by the device itself, with no Authorization header: the pairing token is the credential, and it works ' +
      'once. Answers the device token (`fdt_…`, shown once; only its hash is stored) and the device.',
    tags,
    auth: 'none',
    roles: [],
    body: RedeemPairingBody,
    responses: { 201: { description: 'The device token (shown once).', schema: IssuedDeviceToken } },
    errors: { 401: 'The pairing token is unknown, expired or already used.' },
    async handle({ body }, { rpc, call }) {
      return created(await rpc.call(deviceRpc.redeemPairingToken, body, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/devices/:id/tokens',
    operationId: 'listDeviceTokens',
    summary: 'List a device’s tokens',
    tags,
    roles: READERS,
    params: DeviceIdParams,
    responses: {
      200: {
        description: 'Its tokens, newest first (never their secrets).',
        schema: DeviceTokenList,
      },
    },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(deviceRpc.listTokens, params, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/devices/:id/tokens/:token_id',
    operationId: 'revokeDeviceToken',
    summary: 'Revoke a device token',
    description:
      'Upload routes refuse the token at once; task routes within the gateway’s device-token cache TTL ' +
      '(DEVICE_TOKEN_CACHE_TTL_MS, default 30 s).',
    tags,
    roles: WRITERS,
    params: DeviceTokenParams,
    responses: { 204: { description: 'Revoked (also when it already was).' } },
    async handle({ params }, { rpc, call }) {
      await rpc.call(deviceRpc.revokeToken, params, call);
      return noContent();
    },
  }),
];
