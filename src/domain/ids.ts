import { ulid } from 'ulid';

/** Ids that sort by creation time: `evt_01J...` for events, `dlv_01J...` for deliveries. */
export const newEventId = () => `evt_${ulid()}`;
export const newDeliveryId = () => `dlv_${ulid()}`;
